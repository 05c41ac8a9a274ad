"""Peak inference memory of a model (or an ensemble's members), measured in a fresh process.

In one long process the allocator reuses memory that earlier models freed, so a per-model
"peak RSS increase" reads 0 MB for every model but the first. Here each measurement runs in its
own Python process: it records the resident memory before loading, loads the checkpoint(s), runs
one image (FCN: whole image; DeconvNet: its proposal boxes), and reports the kernel's peak
resident memory (``VmHWM``, Linux) minus the starting point: weights plus the largest activations,
without the Python/torch runtime.

    python -m pixelwise.reproduce.memory SPEC.json   # prints {"peak_mb": ...}
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def peak_inference_mb(checkpoints: list[str | Path], image: np.ndarray, *, boxes: np.ndarray | None = None,
                      size: int = 224, batch: int = 8, timeout: float = 600) -> float | None:
    """Return the peak resident memory in MB of loading ``checkpoints`` and running them on
    ``image`` ``(H, W, 3)`` uint8 in a fresh process (DeconvNet members on ``boxes``, crops of side
    ``size``, ``batch`` at a time); None where it cannot be measured (no ``/proc``, a failure)."""
    if not Path("/proc/self/status").exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "image.npy", image)
        spec = {"checkpoints": [str(c) for c in checkpoints], "image": str(Path(tmp) / "image.npy"),
                "boxes": None if boxes is None else np.asarray(boxes).tolist(), "size": size, "batch": batch}
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        try:
            proc = subprocess.run([sys.executable, "-m", "pixelwise.reproduce.memory", str(Path(tmp) / "spec.json")],
                                  capture_output=True, text=True, timeout=timeout, check=True)
            return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"])
        except (subprocess.SubprocessError, ValueError, KeyError, IndexError):
            return None


def _measure(spec: dict) -> float:
    import torch

    from pixelwise.bench.memory import current_rss_mb, peak_rss_mb, reset_peak_rss

    torch.set_num_threads(1)
    image = np.load(spec["image"])
    boxes = None if spec["boxes"] is None else np.asarray(spec["boxes"], dtype=np.int64)
    from pixelwise.checkpoint import load_model
    from pixelwise.inference.pipeline import deconvnet_scores
    from pixelwise.inference.predict import dense_logits, image_tensor
    from pixelwise.models.base import Family

    reset_peak_rss()
    start = current_rss_mb()
    models = [load_model(path) for path in spec["checkpoints"]]
    with torch.inference_mode():
        for model in models:
            x = image_tensor(image, model)
            if model.family == Family.DECONVNET and boxes is not None:
                deconvnet_scores(model, x, boxes, size=spec["size"], batch=spec["batch"])
            else:
                dense_logits(model, x[None])
    return peak_rss_mb() - start


if __name__ == "__main__":  # pragma: no cover - run as a subprocess by peak_inference_mb
    print(json.dumps({"peak_mb": _measure(json.loads(Path(sys.argv[1]).read_text()))}))
