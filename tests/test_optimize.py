"""Fast inference paths equal the plain path within their stated tolerances.

Tolerances are relative to the largest |logit| of the plain output: fc6-as-matmul, batch-norm
folding and channels_last 1e-5; ONNX Runtime 1e-4; bf16 5e-2 with >= 95% argmax agreement.
"""

import copy

import pytest
import torch
from torch import nn

import pixelwise
from pixelwise.bench.cases import randomise
from pixelwise.errors import PixelwiseError
from pixelwise.fast import MatmulConv2d, MatmulConvTranspose2d, fold_batchnorm, use_fc_matmul
from pixelwise.fast.onnx import onnxruntime_available
from pixelwise.models.ensemble import combine_scores
from pixelwise.optimize import (
    AUTO_ENGINES,
    AUTO_ENGINES_MANY,
    ORT_MIN_IMAGES,
    PreparedModel,
    prepare_for_inference,
    resolve_engine,
)
from pixelwise.runtime import cpu_supports_bf16

WIDTH = 0.03125
TOL = {"plain": 0.0, "eager": 1e-5, "channels_last": 1e-5, "onnxruntime": 1e-4, "bf16": 5e-2}
needs_ort = pytest.mark.skipif(not onnxruntime_available(), reason="onnxruntime not installed")
needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="CPU has no native bf16")


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models run thousands of small ops: one thread avoids OpenMP barrier spinning, which
    # dominates when the 2 shared cores are busy
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def tiny(name: str, seed: int = 0) -> nn.Module:
    """A tiny model with random score layers and batch-norm statistics (non-trivial outputs)."""
    torch.manual_seed(seed)
    return randomise(pixelwise.create_model(name, num_classes=5, width=WIDTH), seed).eval()


def images(n: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 60


# ---------------------------------------------------------------- batch-norm folding
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_fold_conv_bn_matches(transposed, bias):
    from pixelwise.fast.fold import fold_conv_bn

    torch.manual_seed(0)
    cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    conv = cls(6, 8, 3, padding=1, bias=bias)
    bn = nn.BatchNorm2d(8)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.2, 3)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 6, 9, 11)
    with torch.no_grad():
        ref = bn.eval()(conv(x))
        fold_conv_bn(conv, bn)
        out = conv(x)
    assert conv.bias is not None
    assert rel_err(out, ref) < 1e-5


def test_fold_batchnorm_deconvnet():
    model = tiny("deconvnet")
    x = images(1, 224, 224)
    with torch.no_grad():
        ref = model(x)
        folded = copy.deepcopy(model)
        names = fold_batchnorm(folded)
        out = folded(x)
    # 13 encoder convs + fc6 + fc7, deconv_fc6 + 13 decoder deconvs
    assert len(names) == 15 + 14
    assert "backbone.conv1_1" in names and "deconv1_2" in names
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert rel_err(out, ref) < 1e-5


def test_fold_batchnorm_needs_eval_mode():
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(tiny("deconvnet").train())


# ---------------------------------------------------------------- fc6 / deconv-fc6 as GEMM
@pytest.mark.parametrize("channels_last", [False, True])
def test_matmul_conv_equals_conv(channels_last):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 7)
    fast = MatmulConv2d.from_conv(conv)
    assert fast.weight is conv.weight and fast.bias is conv.bias  # shared, not copied
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fast = fast.to(memory_format=fmt)
    x7 = torch.randn(3, 16, 7, 7).contiguous(memory_format=fmt)
    assert fast._matmul_ok(x7)
    with torch.no_grad():
        assert fast(x7).shape == (3, 24, 1, 1)
        assert rel_err(fast(x7), conv(x7)) < 1e-5
        x9 = torch.randn(2, 16, 9, 10).contiguous(memory_format=fmt)  # larger maps: im2col + GEMM
        # (with contiguous weights, as use_fc_matmul leaves them; else the ordinary convolution)
        assert not fast._matmul_ok(x9) and fast._im2col_ok(x9) == (not channels_last)
        out = fast(x9)
        assert out.shape == (2, 24, 3, 4) and rel_err(out, conv(x9)) < 1e-5


def test_matmul_conv_padding_bands_and_fallback(monkeypatch):
    import pixelwise.fast.fc as fc

    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, 7, padding=3)  # FCN's pad-free fc6 keeps the map size
    fast = MatmulConv2d.from_conv(conv)
    x = torch.randn(1, 8, 16, 13)
    monkeypatch.setattr(fc, "BAND_ELEMENTS", 8 * 49 * 13 * 3)  # three output rows per band
    with torch.no_grad():
        assert rel_err(fast(x), conv(x)) < 1e-5
        strided = MatmulConv2d.from_conv(nn.Conv2d(8, 12, 7, stride=2))  # not a GEMM case
        assert not strided._im2col_ok(x)
        assert strided(x).shape == (1, 12, 5, 4)


@pytest.mark.parametrize("channels_last", [False, True])
def test_matmul_deconv_equals_deconv(channels_last):
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(32, 12, 7)
    fast = MatmulConvTranspose2d.from_conv(layer)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fast = fast.to(memory_format=fmt)
    x1 = torch.randn(4, 32, 1, 1)
    assert fast._matmul_ok(x1)
    with torch.no_grad():
        out = fast(x1)
        assert out.shape == (4, 12, 7, 7)
        assert rel_err(out, layer(x1)) < 1e-5
        x3 = torch.randn(2, 32, 3, 2)
        assert not fast._matmul_ok(x3)
        assert rel_err(fast(x3), layer(x3)) < 1e-6


def test_use_fc_matmul_keeps_state_dict_and_output():
    model = tiny("deconvnet")
    keys = list(model.state_dict())
    x = images(2, 224, 224)
    with torch.no_grad():
        ref = model(x)
        replaced = use_fc_matmul(model)
        out = model(x)
    assert sorted(replaced) == ["backbone.fc6", "deconv_fc6"]
    assert isinstance(model.backbone.fc6, MatmulConv2d)
    assert list(model.state_dict()) == keys
    assert rel_err(out, ref) < 1e-5
    # larger proposals (8x8 pool5 map) take the general convolution path
    big = images(1, 256, 256)
    with torch.no_grad():
        assert model(big).shape == (1, 5, 256, 256)


# ---------------------------------------------------------------- prepare_for_inference
ENGINES = ["plain", "eager", "channels_last"]
ENGINES += [pytest.param("onnxruntime", marks=needs_ort), pytest.param("bf16", marks=needs_bf16)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", pixelwise.list_models())
def test_prepare_every_model(name, engine):
    model = tiny(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # DeconvNet takes 224x224 proposals; FCN any size
    x = images(1, 224, 224) if "deconv" in name else images(2, 64, 64)
    fast = prepare_for_inference(model, engine=engine)
    assert isinstance(fast, PreparedModel)
    if name == "edeconvnet":  # the combination is the same fp32 code: compare the members' logits
        assert isinstance(fast.fcn, PreparedModel) and isinstance(fast.deconvnet, PreparedModel)
        assert fast.engine == f"fcn:{engine}+deconvnet:{engine}"
        with torch.no_grad():
            want = model.member_logits(x)
        got = fast.member_logits(x)
        pairs = list(zip(got, want))
        out, ref = combine_scores(*got, model.mode), combine_scores(*want, model.mode)
    else:
        with torch.no_grad():
            ref = model(x)
        out = fast(x)
        pairs = [(out, ref)]
    assert out.shape == ref.shape and out.dtype == torch.float32 and out.is_contiguous()
    for got, want in pairs:
        assert rel_err(got, want) <= TOL[engine]
        if engine == "bf16":
            assert (got.argmax(1) == want.argmax(1)).float().mean() >= 0.95
    assert fast.num_classes == 5 and fast.pixelwise_spec["name"] == name
    assert fast.input_convention == model.input_convention
    # copy=True (default) leaves the caller's model untouched
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


@needs_ort
def test_onnxruntime_fcn_takes_other_sizes():
    model = tiny("fcn8s")
    fast = prepare_for_inference(model, engine="onnxruntime")
    for h, w in [(97, 131), (160, 96)]:
        x = images(1, h, w, seed=h)
        with torch.no_grad():
            assert rel_err(fast(x), model(x)) < 1e-4


def test_deconvnet_forward_any_size():
    model = tiny("deconvnet")
    fast = prepare_for_inference(model, engine="channels_last")
    x = images(1, 150, 200)
    with torch.no_grad():
        ref = model.forward_any_size(x)
    out = fast.forward_any_size(x)
    assert out.shape == (1, 5, 150, 200)
    assert rel_err(out, ref) < 1e-5


def test_copy_false_rewrites_in_place():
    model = tiny("deconvnet")
    x = images(1, 224, 224)
    with torch.no_grad():
        ref = model(x)
    fast = prepare_for_inference(model, engine="eager", copy=False)
    assert fast.inner is model
    assert isinstance(model.backbone.fc6, MatmulConv2d)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert rel_err(fast(x), ref) < 1e-5


def test_auto_engine_choice():
    fcn, deconv = tiny("fcn8s"), tiny("deconvnet")
    assert resolve_engine(fcn, "auto") == AUTO_ENGINES["fcn"]
    assert resolve_engine(deconv, "auto") == AUTO_ENGINES["deconvnet"]
    assert prepare_for_inference(fcn).engine == AUTO_ENGINES["fcn"]
    if onnxruntime_available():  # many images: the export cost pays off
        assert resolve_engine(fcn, "auto", images=ORT_MIN_IMAGES) == AUTO_ENGINES_MANY["fcn"]
        assert resolve_engine(deconv, "auto", images=10_000) == AUTO_ENGINES_MANY["deconvnet"]
    if cpu_supports_bf16():
        assert resolve_engine(fcn, "auto", precision="bf16") == "bf16"


def test_engine_errors_are_clear():
    model = tiny("fcn8s")
    with pytest.raises(PixelwiseError, match="unknown engine 'fast'; valid engines"):
        prepare_for_inference(model, engine="fast")
    with pytest.raises(PixelwiseError, match="fp32 only"):
        prepare_for_inference(model, engine="eager", precision="bf16")
    if not torch.cuda.is_available():
        with pytest.raises(PixelwiseError, match="CUDA"):
            prepare_for_inference(model, engine="cuda")
    if not cpu_supports_bf16():
        with pytest.raises(PixelwiseError, match="native bf16"):
            prepare_for_inference(model, engine="bf16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: the cuda engine is unmeasured")
def test_cuda_engine_matches():  # pragma: no cover - needs a GPU
    model = tiny("fcn8s")
    x = images(1, 224, 224)
    with torch.no_grad():
        ref = model(x)
    fast = prepare_for_inference(model, engine="cuda", device="cuda")
    out = fast(x)
    assert out.device.type == "cpu"
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.95
