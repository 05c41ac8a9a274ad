"""Deep supervision (beyond the paper, a named DeconvNet option): the loss and a training run."""

import torch
import torch.nn.functional as F

from pixelwise.checkpoint import load_checkpoint
from pixelwise.cli import main
from pixelwise.train.loop import segmentation_loss, training_loss


def test_aux_losses_are_added_at_label_resolution():
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 8, 8))
    target[0, :2] = 255
    logits = torch.randn(2, 3, 8, 8)
    aux = [torch.randn(2, 3, 2, 2), torch.randn(2, 3, 4, 4)]
    expected = segmentation_loss(logits, target) + 0.5 * sum(
        segmentation_loss(F.interpolate(a, size=(8, 8), mode="bilinear", align_corners=False), target) for a in aux
    )
    torch.testing.assert_close(training_loss((logits, aux), target, aux_weight=0.5), expected)
    torch.testing.assert_close(training_loss(logits, target), segmentation_loss(logits, target))


def test_train_deconvnet_with_deep_supervision(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "deconvnet", "--width", "0.03125", "--min-channels", "4", "--input-size", "64",
                 "--sampling", "objects", "--crop-size", "64", "--deep-supervision", "0.5", "--batch-size", "2",
                 "--steps", "2", "--data", "size=32", "--train-limit", "4", "--val-split", "", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["model_spec"]["deep_supervision"] is True and ckpt["model_spec"]["input_size"] == 64
    assert "aux_score.deconv3_3.weight" in ckpt["state_dict"]
    # the small-proposal, deeply supervised model runs like any other: proposals at its own side, export
    image = tmp_path / "scene.png"
    from PIL import Image

    from pixelwise.data import SyntheticShapes

    Image.fromarray(SyntheticShapes("val", size=80, length=1)[0]["image"]).save(image)
    assert main(["predict", str(image), "-c", str(out / "last.pt"), "--proposals", "sliding", "--out",
                 str(tmp_path / "pred"), "--engine", "plain"]) == 0
    assert (tmp_path / "pred" / "scene.png").is_file()
    assert main(["export", "--checkpoint", str(out / "last.pt"), "-o", str(tmp_path / "m.onnx")]) == 0
    from pixelwise.weights.onnx_engine import OnnxModel

    assert OnnxModel(tmp_path / "m.onnx").input_sizes == "multiple_of_32_min_64"
    assert main(["train", "--model", "fcn8s", "--deep-supervision", "1", "--steps", "1", "--out",
                 str(tmp_path / "fcn")]) == 2
    assert "DeconvNet option" in capsys.readouterr().err
