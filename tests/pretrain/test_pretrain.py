"""`pixelwise pretrain`: the built-in world's ImageNet, its torchvision export, and its cache."""

import json

import numpy as np
import pytest
import torch

import pixelwise
from pixelwise.cli import main
from pixelwise.pretrain import PretrainConfig, cached_pretrain, pretrain
from pixelwise.pretrain.classifier import VGGClassifier, torchvision_state_dict
from pixelwise.pretrain.crops import ObjectCropClassification
from pixelwise.pretrain.run import cache_folder
from pixelwise.data import SyntheticShapes
from pixelwise.train.deconvnet_sampling import ObjectCrop
from pixelwise.weights import load_backbone_weights

TINY = dict(image_size=48, num_classes=4, scenes=12, val_scenes=4, crop_size=64, width=0.03125, min_channels=4,
            steps=3, batch_size=4, warmup_steps=1, min_visible=16, progress=False)


def test_classifier_is_vgg_with_fc6_over_the_whole_pool5():
    model = VGGClassifier(num_classes=5, width=0.0625, crop_size=96).eval()
    assert model.backbone.fc6.kernel_size == (3, 3) and not hasattr(model.backbone, "fc6_bn")
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 5)
    with pytest.raises(ValueError, match="multiple of 32"):
        VGGClassifier(num_classes=5, crop_size=100)


@pytest.mark.parametrize("target", ["fcn32s", "deconvnet"])
def test_export_is_the_paper_surgery(tmp_path, target):
    """The torchvision file initialises FCN (batch norm folded) and DeconvNet (batch norm copied) so
    that their fc7 at the crop centre is the classifier's: fc8 on it gives the classifier's logits."""
    torch.manual_seed(0)
    clf = VGGClassifier(num_classes=3, width=0.0625, crop_size=96).eval()
    with torch.no_grad():  # trained-looking batch-norm statistics
        for name, m in clf.backbone.named_modules():
            if name.endswith("_bn"):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    state = torchvision_state_dict(clf)
    assert state["classifier.0.weight"].shape == (clf.backbone.fc6.out_channels, clf.backbone.fc6.in_channels * 9)
    path = tmp_path / "vgg16_bn.pth"
    torch.save(state, path)
    extra = dict(input_size=96) if target == "deconvnet" else dict(fc6_kernel=3, pad100=False)
    model = pixelwise.create_model(target, num_classes=4, width=0.0625, **extra).eval()
    report = load_backbone_weights(model, path)
    assert report.input_convention.name == "torchvision_rgb" and report.unused == ["classifier.6"]
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        fc7 = model.backbone(x)["fc7"]
        centre = fc7[:, :, fc7.shape[2] // 2, fc7.shape[3] // 2]
        torch.testing.assert_close(clf.fc8(centre), clf(x), rtol=1e-4, atol=1e-4)


def test_object_crops_are_labelled_with_their_object():
    scenes = SyntheticShapes("pretrain", size=48, num_classes=4, length=6)
    data = ObjectCropClassification(scenes, ObjectCrop(64), seed=0, min_visible=16)
    assert data.num_classes == 3 and data.class_names == ["disc", "square", "triangle"]
    assert len(data) == int(data.label_counts().sum()) > 6
    x, label = data[0]
    scene, k = data.items[0]
    assert x.shape == (3, 64, 64) and label == scenes[scene]["box_labels"][k] - 1
    np.testing.assert_array_equal(data[0][0].numpy(), x.numpy())  # a pure function of (seed, epoch, index)
    data.set_epoch(1)
    assert not torch.equal(data[0][0], x)


def test_pretrain_writes_weights_and_report(tmp_path):
    result = pretrain(PretrainConfig(**TINY), tmp_path / "run")
    assert result.weights == tmp_path / "run" / "vgg16_bn.pth"
    state = torch.load(result.weights, weights_only=True)
    assert "features.1.running_var" in state and state["classifier.6.weight"].shape[0] == 3
    info = json.loads((tmp_path / "run" / "pretrain.json").read_text())
    assert info["class_names"] == ["disc", "square", "triangle"] and 0 <= info["val_accuracy"] <= 1
    assert info["settings"]["steps"] == 3 and len(info["history"]) == 1
    plain = pretrain(PretrainConfig(**TINY, batch_norm=False), tmp_path / "plain")
    assert plain.weights.name == "vgg16.pth"


def test_pretrain_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELWISE_CACHE", str(tmp_path / "cache"))
    cfg = PretrainConfig(**TINY)
    first = cached_pretrain(cfg)
    assert not first.cached and first.weights.parent == cache_folder(cfg)
    again = cached_pretrain(PretrainConfig(**TINY, threads=1))  # threads and progress are not settings
    assert again.cached and again.weights == first.weights
    other = PretrainConfig(**{**TINY, "steps": 4})
    assert cache_folder(other) != cache_folder(cfg)
    # an unreadable cache entry is trained again, to the same weights (deterministic per seed)
    before = torch.load(first.weights, weights_only=True)
    (first.weights.parent / "pretrain.json").write_text("{broken")
    messages = []
    redo = cached_pretrain(cfg, log=messages.append)
    assert not redo.cached and any("unusable" in m for m in messages)
    after = torch.load(redo.weights, weights_only=True)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_cli_prints_the_weights_and_copies_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIXELWISE_CACHE", str(tmp_path / "cache"))
    args = ["pretrain", "--classes", "4", "--image-size", "48", "--scenes", "12", "--crop-size", "64",
            "--width", "0.03125", "--min-channels", "4", "--steps", "2", "--batch-size", "4", "--no-progress",
            "--out", str(tmp_path / "out")]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(tmp_path / "out" / "vgg16_bn.pth")
    assert "held-out accuracy" in captured.err and (tmp_path / "out" / "pretrain.json").is_file()
    assert main(args) == 0
    assert "from the cache" in capsys.readouterr().err
    assert main(["pretrain", "--crop-size", "100"]) == 2
    assert "multiple of 32" in capsys.readouterr().err
