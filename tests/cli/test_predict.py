"""`pixelwise predict`, `pixelwise compare` and `pixelwise ensemble` end to end on tiny models."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixelwise
from pixelwise.checkpoint import make_checkpoint, save_checkpoint
from pixelwise.cli import main
from pixelwise.data import build_dataset, write_image
from pixelwise.inference import segment
from pixelwise.inference.boxes import write_box_file
from pixelwise.models.ensemble import EDeconvNet, combine_scores

NAMES = ["background", "disc", "square", "triangle"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    out = {}
    for name in ("fcn32s", "fcn8s", "deconvnet"):
        out[name] = save_checkpoint(root / f"{name}.pt", make_checkpoint(tiny_model(name), class_names=NAMES))
    return out


@pytest.fixture
def images(tmp_path):
    ds = build_dataset("synthetic", split="val", length=2, size=64, num_classes=4)
    folder = tmp_path / "images"
    for i in range(2):
        write_image(folder / f"img{i}.png", ds[i]["image"])
    good = (folder / "img0.png").read_bytes()
    (folder / "broken.png").write_bytes(good[: len(good) // 3])  # truncated PNG
    (folder / "notes.txt").write_text("not an image")  # ignored: not an image extension
    return folder


def test_predict_folder_with_a_corrupt_file(ckpts, images, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["predict", str(images), "--checkpoint", str(ckpts["fcn8s"]), "--out", str(out), "--save-probs"])
    assert code == 1
    err = capsys.readouterr().err
    bad_lines = [ln for ln in err.splitlines() if "broken.png" in ln]
    assert len(bad_lines) == 1 and "skipped" in bad_lines[0]
    assert not (out / "broken.png").exists()
    model = pixelwise.load_model(ckpts["fcn8s"])
    for stem in ("img0", "img1"):
        with Image.open(out / f"{stem}.png") as im:
            assert im.mode == "P" and im.size == (64, 64)
            mask = np.asarray(im)
        with Image.open(out / f"{stem}_overlay.png") as im:
            assert im.mode == "RGB" and im.size == (64, 64)
        probs = np.load(out / f"{stem}_probs.npy")
        assert probs.dtype == np.float16 and probs.shape == (4, 64, 64)
        image = np.asarray(Image.open(images / f"{stem}.png").convert("RGB"))
        expected = segment(model, image)
        np.testing.assert_array_equal(mask, expected.argmax(0))
        np.testing.assert_allclose(probs, expected, atol=2e-3)
        summary = json.loads((out / f"{stem}.json").read_text())
        shares = {c["name"]: c["share"] for c in summary["classes"]}
        assert set(shares) <= set(NAMES) and sum(shares.values()) == pytest.approx(1.0, abs=1e-4)
        counts = np.bincount(mask.ravel(), minlength=4)
        for c in summary["classes"]:
            assert c["pixels"] == counts[c["index"]] and c["name"] == NAMES[c["index"]]


def test_predict_glob_all_good_exit_0(ckpts, images, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", str(images / "img*.png"), "-c", str(ckpts["fcn32s"]), "--out", str(out), "--tta", "flip"]) == 0
    assert sorted(p.name for p in out.glob("*.json")) == ["img0.json", "img1.json"]


def test_predict_usage_errors_exit_2(ckpts, images, tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["predict", str(tmp_path / "nothing*.png"), "-c", str(ckpts["fcn8s"]), "--out", out]) == 2
    assert main(["predict", str(images), "-c", str(ckpts["fcn8s"]), "--model", "fcn8s", "--out", out]) == 2
    assert main(["predict", str(images), "-c", str(tmp_path / "missing.pt"), "--out", out]) == 2
    assert main(["predict", str(images), "--model", "deconvnet", "--proposals", "edge-boxes", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "no file matches" in err and "exactly one of" in err and "missing.pt" in err and "model.yml.gz" in err
    assert all(ln.startswith("pixelwise predict: error:") for ln in err.strip().splitlines())


def test_predict_deconvnet_with_a_box_file(ckpts, images, tmp_path):
    boxes = write_box_file(tmp_path / "boxes.csv", {"img0.png": (np.array([[0, 0, 40, 64], [20, 10, 64, 50]]), None),
                                                    "img1": (np.array([[8, 8, 56, 56]]), None)})
    out = tmp_path / "out"
    args = ["predict", str(images / "img0.png"), str(images / "img1.png"), "-c", str(ckpts["deconvnet"]),
            "--out", str(out), "--boxes", str(boxes), "--min-box", "0", "--enlarge", "1.0", "--batch", "2", "--uncovered", "background"]
    assert main(args) == 0
    info = json.loads((out / "img0.json").read_text())["inference"]
    assert info["proposals"] == "file" and info["boxes"] == [[0, 0, 40, 64], [20, 10, 64, 50]]
    assert info["coverage"] == pytest.approx(1 - 24 * 24 / 64**2)  # x >= 40 outside y 10..50 is uncovered
    assert json.loads((out / "img1.json").read_text())["inference"]["coverage"] == pytest.approx(48 * 48 / 64**2)
    mask = np.asarray(Image.open(out / "img1.png"))
    assert (mask[:8] == 0).all() and (mask[:, 56:] == 0).all()  # uncovered -> background


def test_ensemble_checkpoint_loads_and_predicts(ckpts, images, tmp_path, capsys):
    path = tmp_path / "edeconvnet.pt"
    assert main(["ensemble", "--fcn", str(ckpts["fcn8s"]), "--deconvnet", str(ckpts["deconvnet"]),
                 "--mode", "product", "-o", str(path)]) == 0
    model = pixelwise.load_model(path)
    assert isinstance(model, EDeconvNet) and model.mode == "product" and model.class_names == NAMES
    fcn, dec = pixelwise.load_model(ckpts["fcn8s"]), pixelwise.load_model(ckpts["deconvnet"])
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        expected = combine_scores(fcn(x), dec.forward_any_size(x), "product")
        torch.testing.assert_close(model(x), expected)
    out = tmp_path / "out"
    assert main(["predict", str(images / "img0.png"), "-c", str(path), "--out", str(out), "--proposals", "none"]) == 0
    assert main(["predict", str(images / "img0.png"), "--fcn", str(ckpts["fcn8s"]), "--deconvnet", str(ckpts["deconvnet"]),
                 "--mode", "product", "--out", str(tmp_path / "out2"), "--proposals", "none"]) == 0
    a = np.asarray(Image.open(out / "img0.png"))
    b = np.asarray(Image.open(tmp_path / "out2" / "img0.png"))
    np.testing.assert_array_equal(a, b)
    # members that do not fit: FCN-32s is not an FCN-8s
    assert main(["ensemble", "--fcn", str(ckpts["fcn32s"]), "--deconvnet", str(ckpts["deconvnet"]), "-o", str(path)]) == 2
    assert "expected an FCN-8s" in capsys.readouterr().err


def test_compare_writes_a_grid(ckpts, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code = main(["compare", "--dataset", "synthetic", "--data", "size=64", "--data", "num_classes=4",
                 "--indices", "0,1", "--checkpoints", f"fcn32s={ckpts['fcn32s']}", f"fcn8s={ckpts['fcn8s']}",
                 f"deconvnet={ckpts['deconvnet']}", "--proposals", "gt", "--min-box", "0",
                 "--crf-for", "fcn8s", "--out", str(out)])
    assert code == 0
    assert "image, truth, fcn32s, fcn8s, fcn8s+CRF, deconvnet" in capsys.readouterr().err
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 6 * 100 and im.size[1] > 2 * 100


def test_compare_from_image_files_with_truth(ckpts, images, tmp_path):
    truth = tmp_path / "truth"
    truth.mkdir()
    from pixelwise.data import write_mask

    write_mask(truth / "img0.png", np.zeros((64, 64), np.uint8))
    out = tmp_path / "g.png"
    assert main(["compare", str(images / "img0.png"), str(images / "img1.png"), "--truth", str(truth),
                 "--checkpoints", f"a={ckpts['fcn8s']}", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert main(["compare", str(images / "img0.png"), "--checkpoints", "nolabel.pt", "--out", str(out)]) == 2


def test_predict_runs_an_exported_onnx_file_like_the_checkpoint(tmp_path):
    """`pixelwise export` then `pixelwise predict --checkpoint model.onnx`: ONNX Runtime gives the
    same masks as the torch engine."""
    model = pixelwise.create_model("fcn8s", num_classes=3, width=0.03125)
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.startswith("score_"):
                p.normal_(std=0.5)
    ckpt = save_checkpoint(tmp_path / "m.pt", make_checkpoint(model))
    rng = np.random.default_rng(0)
    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(images / "a.png")
    assert main(["export", "--checkpoint", str(ckpt), "-o", str(tmp_path / "m.onnx"), "--quiet"]) == 0
    assert main(["predict", str(images), "--checkpoint", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "o1")]) == 0
    assert main(["predict", str(images), "--checkpoint", str(ckpt), "--engine", "plain",
                 "--out", str(tmp_path / "o2")]) == 0
    a = np.array(Image.open(tmp_path / "o1" / "a.png"))
    b = np.array(Image.open(tmp_path / "o2" / "a.png"))
    assert (a == b).mean() > 0.99


def test_as_released_sets_the_releases_inference(ckpts, images, tmp_path):
    from pixelwise.cli import build_parser
    from pixelwise.cli.inference_options import check_inference_args, post_options_from, proposal_options_from

    parser = build_parser()
    args = parser.parse_args(["predict", "x.png", "-c", "m.pt", "-o", "o", "--as-released"])
    check_inference_args(args)
    proposals = proposal_options_from(args, pixelwise.load_model(ckpts["deconvnet"]))
    assert (proposals.aggregate, proposals.uncovered, proposals.pad) == ("max0", "zero", "black")
    assert post_options_from(args).ensemble_mode == "product"
    evaluation = parser.parse_args(["eval", "-c", "m.pt", "--mode", "proposals", "--as-released"])
    from pixelwise.cli.options import apply_as_released

    apply_as_released(evaluation, ensemble_mode=False)
    assert (evaluation.mode, evaluation.aggregate, evaluation.uncovered, evaluation.pad) == (
        "proposals", "max0", "zero", "black")
    # end to end: an EDeconvNet on one box, the rest of the image uniform -> the JSON says how it ran
    boxes = write_box_file(tmp_path / "boxes.csv", {"img0.png": (np.array([[0, 0, 40, 64]]), None)})
    out = tmp_path / "out"
    assert main(["predict", str(images / "img0.png"), "--fcn", str(ckpts["fcn8s"]), "--deconvnet", str(ckpts["deconvnet"]),
                 "--boxes", str(boxes), "--min-box", "0", "--enlarge", "1.0", "--as-released", "--out", str(out)]) == 0
    info = json.loads((out / "img0.json").read_text())["inference"]
    assert info["aggregate"] == "max0"


def test_option_objects_from_the_flags(ckpts):
    from pixelwise.cli import build_parser
    from pixelwise.cli.inference_options import (
        check_inference_args,
        dense_options_from,
        post_options_from,
        proposal_options_from,
    )
    from pixelwise.errors import PixelwiseError
    from pixelwise.inference import DenseOptions, PostOptions, ProposalOptions

    parser = build_parser()
    args = parser.parse_args(["predict", "x.png", "-c", "m.pt", "-o", "o"])
    check_inference_args(args)
    fcn, deconvnet = pixelwise.load_model(ckpts["fcn8s"]), pixelwise.load_model(ckpts["deconvnet"])
    # the flags' defaults are the option objects' defaults; a DeconvNet gets selective search
    assert dense_options_from(args) == DenseOptions() and post_options_from(args) == PostOptions()
    assert proposal_options_from(args, fcn) == ProposalOptions()
    assert proposal_options_from(args, deconvnet) == ProposalOptions(method="selective-search")
    args = parser.parse_args(["predict", "x.png", "-c", "m.pt", "-o", "o", "--proposals", "gt", "--tile", "64",
                              "--tta", "flip", "--scales", "0.5,1", "--top-k", "7"])
    check_inference_args(args)
    assert dense_options_from(args) == DenseOptions(tile=64, tta="flip", scales=(0.5, 1.0))
    gt = proposal_options_from(args, deconvnet)
    assert (gt.method, gt.top_k) == ("gt", 7)
    assert gt.for_image(sample={"name": "s"}).method_options == {"sample": {"name": "s"}}
    with pytest.raises(PixelwiseError, match="needs ground-truth boxes"):
        gt.for_image(image_name="a.png")


def test_predict_does_not_import_scipy():
    """scipy.ndimage costs a `predict` process 0.6 s of start-up: only the data code that needs it
    (synthetic worlds, instance boxes, DeconvNet training crops) imports it, when it runs."""
    import subprocess
    import sys

    code = "import sys, pixelwise.cli.predict; print(sorted(m for m in sys.modules if m.startswith('scipy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
