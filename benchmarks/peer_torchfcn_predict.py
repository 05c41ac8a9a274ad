"""The pytorch-fcn side of ``benchmarks/predict_vs_peer.py``: segment a folder with torchfcn's FCN8s.

    python benchmarks/peer_torchfcn_predict.py --weights fcn8s_torchfcn.pth --out DIR IMAGES_DIR
        [--torchfcn-path ROOT]   # the cached copy of pixelwise.bench.peer.torchfcn_location()

What a pytorch-fcn user's script does: load a torchfcn ``FCN8s`` state dict; per image (sorted
``.jpg``/``.jpeg``/``.png`` files): read it with PIL as RGB, Caffe preprocessing as torchfcn's VOC
datasets do it (RGB -> BGR, minus the VGG mean in BGR, HWC -> CHW, float32), a forward pass in fp32
NCHW under ``no_grad``, argmax over the classes, and ``NAME.png``, a palette PNG of the labels in
the VOC colours. It imports nothing from pixelwise, so the process costs what such a script costs.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)  # torchfcn's VOC mean (Caffe VGG16), BGR
EXTENSIONS = (".jpg", ".jpeg", ".png")


def import_fcn8s(path: str | None) -> type:
    """Return the ``torchfcn.models.FCN8s`` class, from ``path`` first on ``sys.path`` when given."""
    if path:
        sys.path.insert(0, path)
    try:
        import fcn  # noqa: F401
    except Exception:  # torchfcn's models import it for their pretrained downloads only
        sys.modules["fcn"] = types.ModuleType("fcn")
    from torchfcn.models import FCN8s

    return FCN8s


def voc_palette() -> list[int]:
    """Return the VOC colour map as a flat ``[r0, g0, b0, r1, ...]`` list of 256 colours: bit ``3k + c``
    of a label becomes bit ``7 - k`` of channel ``c``."""
    flat = []
    for label in range(256):
        rgb = [0, 0, 0]
        for k in range(8):
            for c in range(3):
                rgb[c] |= ((label >> (3 * k + c)) & 1) << (7 - k)
        flat += rgb
    return flat


def image_paths(folder: Path) -> list[Path]:
    """Return the folder's images, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def main(argv: list[str] | None = None) -> int:
    """Segment every image of the folder; write ``NAME.png`` label masks into ``--out``; return 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", type=Path, help="folder of images")
    p.add_argument("--weights", required=True, type=Path, help="torchfcn FCN8s state dict (.pth)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--torchfcn-path", default=None, help="folder to import torchfcn from (default: installed)")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image

    start = time.perf_counter()
    state = torch.load(args.weights, map_location="cpu")
    model = import_fcn8s(args.torchfcn_path)(n_class=state["score_fr.weight"].shape[0])
    model.load_state_dict(state)
    model.eval()
    mean = np.array(MEAN_BGR, dtype=np.float32)
    palette = voc_palette()
    args.out.mkdir(parents=True, exist_ok=True)
    paths = image_paths(args.images)
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        bgr = rgb[:, :, ::-1].astype(np.float32) - mean
        x = torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None]
        with torch.no_grad():
            labels = model(x)[0].argmax(0).to(torch.uint8).numpy()
        mask = Image.fromarray(labels)
        mask.putpalette(palette)  # L -> P: a palette PNG
        mask.save(args.out / f"{path.stem}.png")
    print(f"segmented {len(paths)} images in {time.perf_counter() - start:.1f} s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
