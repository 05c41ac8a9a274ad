import pytest
import torch

import pixelwise
from pixelwise.errors import PixelwiseError
from pixelwise.models.flops import count_parameters

TINY = dict(num_classes=5, width=0.0625)


def input_size(name):
    return (224, 224) if name == "deconvnet" else (37, 53)


@pytest.mark.parametrize("name", pixelwise.list_models())
def test_forward_backward_shape_finite_deterministic(name):
    model = pixelwise.create_model(name, **TINY)
    h, w = input_size(name)
    x = torch.randn(2, 3, h, w)
    model.train()
    out = model(x)
    assert out.shape == (2, 5, h, w)
    target = torch.randint(0, 5, (2, h, w))
    torch.nn.functional.cross_entropy(out, target).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)


def test_unknown_model_lists_valid_names():
    with pytest.raises(PixelwiseError) as err:
        pixelwise.create_model("fcn4s")
    msg = str(err.value)
    for name in ("fcn32s", "fcn8s", "deconvnet"):
        assert name in msg


def test_bad_kwarg_is_clear():
    with pytest.raises(PixelwiseError, match="bad argument"):
        pixelwise.create_model("fcn8s", nonsense=1)


@pytest.mark.parametrize(
    "name, expected_millions",
    [("fcn32s", 136.2), ("fcn16s", 134.8), ("fcn8s", 134.5), ("fcn8s_atonce", 134.5), ("deconvnet", 251.8)],
)
def test_paper_exact_parameter_counts_on_meta(name, expected_millions):
    with torch.device("meta"):
        model = pixelwise.create_model(name)
    assert next(model.parameters()).is_meta
    assert count_parameters(model) / 1e6 == pytest.approx(expected_millions, abs=0.05)


def test_spec_recorded():
    model = pixelwise.create_model("fcn16s", num_classes=3, width=0.25, pad100=False)
    assert model.pixelwise_spec == {"name": "fcn16s", "num_classes": 3, "width": 0.25, "pad100": False}
