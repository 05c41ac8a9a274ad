"""A checkpoint's input scale and class colours reach predict, ONNX export, eval and serve: the
network sees the image at its training resolution, every output has the image's own size and the
dataset's colours."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixelwise
from pixelwise.checkpoint import load_model, make_checkpoint, save_checkpoint
from pixelwise.cli import main
from pixelwise.data.camvid import CAMVID_CLASSES, CAMVID_COLORS
from pixelwise.inference import segment
from pixelwise.models.base import check_input_scale

H, W = 36, 48


@pytest.fixture(scope="module")
def scaled_ckpt(tmp_path_factory):
    """A tiny 11-class FCN-8s that runs at half size, with CamVid's names and colours."""
    model = pixelwise.create_model("fcn8s", num_classes=11, width=0.03125, pad100=False)
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.startswith("score_"):
                p.normal_(std=0.5)
    model.input_scale = 0.5
    model.class_colors = CAMVID_COLORS
    folder = tmp_path_factory.mktemp("scaled")
    return save_checkpoint(folder / "m.pt", make_checkpoint(model, class_names=list(CAMVID_CLASSES)))


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


def test_checkpoint_round_trip_and_segment_at_scale(scaled_ckpt, image_dir):
    model = load_model(scaled_ckpt)
    assert model.input_scale == 0.5 and model.class_colors[4] == [60, 40, 222]
    image = np.array(Image.open(image_dir / "a.png"))
    probs = segment(model, image)
    assert probs.shape == (11, H, W)
    # the same as running the network on the halved image and resizing its scores back
    from pixelwise.data.transforms import rescale_image

    model.input_scale = 1.0
    small = segment(model, rescale_image(image, 0.5))
    back = torch.nn.functional.interpolate(torch.from_numpy(small)[None], size=(H, W), mode="bilinear",
                                           align_corners=False)[0].numpy()
    assert np.allclose(probs, back, atol=1e-5)


def test_predict_writes_full_size_masks_in_the_datasets_colours(scaled_ckpt, image_dir, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", str(image_dir), "-c", str(scaled_ckpt), "--out", str(out), "--engine", "plain"]) == 0
    mask = Image.open(out / "a.png")
    assert mask.size == (W, H) and mask.mode == "P"
    palette = np.array(mask.getpalette()[: 3 * 11]).reshape(11, 3)
    assert (palette == CAMVID_COLORS).all()
    summary = json.loads((out / "a.json").read_text())
    assert {c["name"] for c in summary["classes"]} <= set(CAMVID_CLASSES)


def test_onnx_export_keeps_scale_and_colours(scaled_ckpt, image_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(scaled_ckpt), "-o", str(onnx), "--quiet"]) == 0
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    assert main(["predict", str(image_dir), "-c", str(onnx), "--out", str(out1)]) == 0
    assert main(["predict", str(image_dir), "-c", str(scaled_ckpt), "--engine", "plain", "--out", str(out2)]) == 0
    a, b = Image.open(out1 / "a.png"), Image.open(out2 / "a.png")
    assert a.size == (W, H) and a.getpalette()[:33] == b.getpalette()[:33]
    assert (np.array(a) == np.array(b)).mean() > 0.99


def test_serve_uses_the_checkpoints_colours(scaled_ckpt, image_dir):
    from pixelwise.serve import ServeOptions, legend_rows, load_served_models, segment_image

    entry = load_served_models([scaled_ckpt], [])[0]
    image = np.array(Image.open(image_dir / "a.png"))
    seg = segment_image(entry, image, ServeOptions(proposals="none"))
    assert seg.mask.shape == (H, W)
    rows = legend_rows(seg.mask, seg.class_names, seg.palette)
    for row in rows:
        r, g, b = CAMVID_COLORS[row["index"]]
        assert row["colour"] == f"#{r:02x}{g:02x}{b:02x}" and row["name"] == CAMVID_CLASSES[row["index"]]


def test_bad_scale_is_one_line():
    with pytest.raises(pixelwise.errors.PixelwiseError, match="input scale must be in"):
        check_input_scale(0)
    assert main(["train", "--input-scale", "-1", "--steps", "1", "--out", "/tmp/never"]) == 2
