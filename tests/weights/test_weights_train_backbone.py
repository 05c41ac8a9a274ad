"""`pixelwise train --backbone-weights`: ImageNet weights in, their input convention carried along."""

import torch
from weights_fixtures import tv_state

from pixelwise.checkpoint import load_checkpoint
from pixelwise.cli import main


def test_train_with_torchvision_backbone_uses_its_weights_and_convention(tmp_path):
    state = tv_state(0.0625, bn=False)
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    out = tmp_path / "run"
    code = main([
        "train", "--model", "fcn32s", "--width", "0.0625", "--min-channels", "1", "--backbone-weights", str(path),
        "--steps", "1", "--lr", "1e-12", "--data", "size=32", "--data", "length=2", "--val-split", "",
        "--out", str(out), "--no-progress",
    ])
    assert code == 0
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["input_convention"]["name"] == "torchvision_rgb"
    assert ckpt["config"]["convention"] == "torchvision_rgb"
    # one step at a negligible lr leaves the imported conv1_1 weights in place
    torch.testing.assert_close(ckpt["state_dict"]["backbone.conv1_1.weight"], state["features.0.weight"],
                               atol=1e-6, rtol=0)
