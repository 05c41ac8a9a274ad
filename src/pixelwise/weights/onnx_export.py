"""Export any pixelwise model to ONNX and check it against ONNX Runtime.

The TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``, opset 17) is used: it
needs no extra packages and handles transposed convolutions and the crops. Two things need care:

- Max-unpooling (DeconvNet). Tracing ``F.max_unpool2d`` fails in current torch (its Python size
  check compares traced sizes), and ONNX ``MaxUnpool`` wants indices over the whole tensor while
  torch's are per plane. During export :func:`exportable_unpooling` swaps it for the same operation
  written as a scatter into a zero tensor (ONNX ``ScatterElements``), exact and size-dynamic.
- Sizes. FCN graphs take any height and width (exported with dynamic H/W). DeconvNet takes sides
  that are multiples of 32 and >= 224, also dynamic. EDeconvNet pads its DeconvNet input with
  a size-dependent Python branch, so its graph is fixed to the export size (batch stays dynamic);
  so is an FCN with ``pad_input_to`` (the DeconvNet release's fcn-8s-pascal protocol), whose
  padding depends on the input size.

The model's spec, input convention and class names are stored in the file's ``metadata_props``
(keys ``pixelwise.*``), which :class:`pixelwise.weights.onnx_engine.OnnxModel` reads back.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.convention import CAFFE_BGR, InputConvention, get_convention
from pixelwise.errors import PixelwiseError
from pixelwise.models.deconvnet import PROPOSAL_SIZE, DeconvNet
from pixelwise.models.ensemble import EDeconvNet
from pixelwise.models.fcn import FCN

ONNX_HINT = "ONNX export needs the onnx and onnxruntime packages: pip install 'pixelwise[onnx]'"
DEFAULT_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "logits"
META_PREFIX = "pixelwise."
# input_sizes values stored in the metadata
SIZES_ANY, SIZES_MULTIPLE_OF_32 = "any", "multiple_of_32_min_224"
MULTIPLE_OF_32_PREFIX = "multiple_of_32_min_"


def multiple_of_32_min(rule: str) -> int | None:
    """Return the smallest side of an ``input_sizes`` rule ``multiple_of_32_min_<side>`` (None
    for any other rule)."""
    return int(rule[len(MULTIPLE_OF_32_PREFIX):]) if rule.startswith(MULTIPLE_OF_32_PREFIX) else None


def scatter_max_unpool2d(
    input: torch.Tensor,
    indices: torch.Tensor,
    kernel_size,
    stride=None,
    padding=0,
    output_size=None,
) -> torch.Tensor:
    """Same result as ``F.max_unpool2d`` for ``(N, C, h, w)`` input and per-plane indices,
    written as a scatter so that it traces and exports (``ScatterElements``) with dynamic sizes.
    Returns ``(N, C, H_out, W_out)``."""
    k = _pair(kernel_size)
    s = _pair(stride if stride is not None else kernel_size)
    p = _pair(padding)
    n, c, h, w = input.shape
    if output_size is None:
        out_h = (h - 1) * s[0] + k[0] - 2 * p[0]
        out_w = (w - 1) * s[1] + k[1] - 2 * p[1]
    else:
        out_h, out_w = output_size[-2], output_size[-1]
    flat = input.new_zeros((n, c, out_h * out_w))
    flat = flat.scatter(2, indices.flatten(2), input.flatten(2))
    return flat.reshape(n, c, out_h, out_w)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


@contextlib.contextmanager
def exportable_unpooling():
    """Within this block ``torch.nn.functional.max_unpool2d`` is :func:`scatter_max_unpool2d`."""
    original = F.max_unpool2d
    F.max_unpool2d = scatter_max_unpool2d
    try:
        yield
    finally:
        F.max_unpool2d = original


@dataclass
class SizeCheck:
    """One ONNX Runtime vs torch comparison at ``height x width``."""

    height: int
    width: int
    max_abs_diff: float
    argmax_agreement: float  # fraction of pixels whose predicted class is the same
    max_abs_output: float  # scale of the logits, to read the difference against

    @property
    def relative_diff(self) -> float:
        """``max_abs_diff / max(1, max |logit|)``."""
        return self.max_abs_diff / max(1.0, self.max_abs_output)


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and how closely ONNX Runtime reproduces the torch model."""

    path: str
    opset: int
    input_sizes: str  # "any", "multiple_of_32_min_224" or "fixed:HxW"
    dynamic: bool
    file_bytes: int
    checks: list[SizeCheck] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float | None:
        """Largest |onnxruntime - torch| over all checks (None when not checked)."""
        return max((c.max_abs_diff for c in self.checks), default=None)


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise PixelwiseError(ONNX_HINT) from None


def input_sizes_of(model: nn.Module, height: int, width: int, dynamic: bool) -> str:
    """Return the ``input_sizes`` rule an exported graph of ``model`` obeys (see module doc)."""
    if isinstance(model, EDeconvNet) or not dynamic:
        return f"fixed:{height}x{width}"
    if isinstance(model, DeconvNet):
        return f"{MULTIPLE_OF_32_PREFIX}{model.input_size}"
    if isinstance(model, FCN):
        return f"fixed:{height}x{width}" if getattr(model, "pad_input_to", None) else SIZES_ANY
    return f"fixed:{height}x{width}"


def example_input(convention: InputConvention, batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Return a ``(batch, 3, height, width)`` float tensor: random RGB uint8 pixels normalised as
    ``convention`` says (so magnitudes match real inputs: 0..255-ish for Caffe, ~N(0,1) for torchvision)."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (batch, height, width, 3), generator=g).float()
    x = rgb[..., [2, 1, 0]] if convention.channel_order == "BGR" else rgb
    x = x * convention.scale
    x = (x - torch.tensor(convention.mean)) / torch.tensor(convention.std)
    return x.permute(0, 3, 1, 2).contiguous()


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _default_size(model: nn.Module) -> int:
    if isinstance(model, EDeconvNet):
        return model.deconvnet.input_size
    return model.input_size if isinstance(model, DeconvNet) else PROPOSAL_SIZE


def _second_size(model: nn.Module, height: int, width: int) -> tuple[int, int]:
    # a different size the dynamic graph must also handle (DeconvNet: next multiples of 32)
    if isinstance(model, DeconvNet):
        return height + 32, width + 64
    return height + 37, width + 21


def _metadata(model: nn.Module, convention: InputConvention, class_names, input_sizes: str) -> dict[str, str]:
    from pixelwise import __version__

    spec = getattr(model, "pixelwise_spec", None)
    return {
        f"{META_PREFIX}model_spec": json.dumps(spec) if spec is not None else "null",
        f"{META_PREFIX}input_convention": json.dumps(convention.to_dict()),
        f"{META_PREFIX}class_names": json.dumps(list(class_names) if class_names is not None else None),
        f"{META_PREFIX}num_classes": str(getattr(model, "num_classes", "")),
        f"{META_PREFIX}input_sizes": input_sizes,
        f"{META_PREFIX}version": __version__,
    }


def _append_metadata(path: Path, metadata: dict[str, str]) -> None:
    # Serialized protobuf messages merge when concatenated (repeated fields append), so adding a
    # ModelProto that holds only metadata_props avoids re-reading a model of up to ~1.5 GB.
    import onnx

    extra = onnx.ModelProto()
    for key, value in metadata.items():
        entry = extra.metadata_props.add()
        entry.key, entry.value = key, value
    with open(path, "ab") as f:
        f.write(extra.SerializeToString())


def check_with_onnxruntime(
    model: nn.Module, path: str | os.PathLike, sizes: list[tuple[int, int]], convention: InputConvention, *, batch: int = 1
) -> list[SizeCheck]:
    """Run the exported file in ONNX Runtime and the torch model on the same inputs; return one
    :class:`SizeCheck` per ``(height, width)``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    checks = []
    for i, (h, w) in enumerate(sizes):
        x = example_input(convention, batch, h, w, seed=i)
        with torch.no_grad():
            ref = model(x.to(_device_of(model))).float().cpu()
        try:
            got = torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise PixelwiseError(f"{path}: ONNX Runtime failed at {h}x{w}: {str(exc).splitlines()[0][:200]}") from None
        if got.shape != ref.shape:
            raise PixelwiseError(f"{path}: ONNX Runtime returned {tuple(got.shape)} at {h}x{w}, torch {tuple(ref.shape)}")
        diff = float((got - ref).abs().max()) if ref.numel() else 0.0
        agree = float((got.argmax(1) == ref.argmax(1)).float().mean()) if ref.numel() else 1.0
        checks.append(SizeCheck(h, w, diff, agree, float(ref.abs().max()) if ref.numel() else 0.0))
    return checks


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    height: int | None = None,
    width: int | None = None,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    class_names: list[str] | None = None,
    input_convention: InputConvention | None = None,
) -> ExportReport:
    """Export ``model`` (``(N, 3, H, W)`` -> ``(N, C, H, W)`` logits) to ONNX at ``path``.

    The graph is traced at ``height x width`` (default 224x224); batch is always dynamic, and H/W
    too where the model allows it (``dynamic=True``; see :func:`input_sizes_of`). With ``check``
    the file is run in ONNX Runtime at the export size and, for dynamic graphs, at a second size,
    and compared with the torch model; the differences are in the returned :class:`ExportReport`.
    """
    _require_onnx()
    path = Path(path)
    height = height or _default_size(model)
    width = width or height
    if isinstance(model, DeconvNet) and (height, width) != model.valid_size(height, width):
        raise PixelwiseError(
            f"DeconvNet exports need sides that are multiples of 32 and >= {model.input_size}, got "
            f"{height}x{width} (set --size)"
        )
    convention = get_convention(input_convention or getattr(model, "input_convention", CAFFE_BGR))
    class_names = class_names if class_names is not None else getattr(model, "class_names", None)
    input_sizes = input_sizes_of(model, height, width, dynamic)
    dyn = {0: "batch"}
    if not input_sizes.startswith("fixed"):
        dyn.update({2: "height", 3: "width"})
    was_training = model.training
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    x = example_input(convention, 1, height, width).to(_device_of(model))
    # torch >= 2.5 defaults to the dynamo exporter on some versions; ask for the TorchScript one
    extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    try:
        with exportable_unpooling(), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter; the check below is what counts
            torch.onnx.export(
                model,
                (x,),
                str(path),
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: dyn, OUTPUT_NAME: dyn},
                do_constant_folding=True,
                **extra,
            )
        _append_metadata(path, _metadata(model, convention, class_names, input_sizes))
        report = ExportReport(str(path), opset, input_sizes, len(dyn) > 1, path.stat().st_size)
        if check:
            sizes = [(height, width)]
            if report.dynamic:
                sizes.append(_second_size(model, height, width))
            report.checks = check_with_onnxruntime(model, path, sizes, convention)
    finally:
        model.train(was_training)
    return report


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Return the ``pixelwise.*`` metadata of an exported file (keys without the prefix)."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return {p.key[len(META_PREFIX):]: p.value for p in m.metadata_props if p.key.startswith(META_PREFIX)}


__all__ = [
    "ExportReport",
    "SizeCheck",
    "check_with_onnxruntime",
    "example_input",
    "export_onnx",
    "exportable_unpooling",
    "input_sizes_of",
    "read_metadata",
    "scatter_max_unpool2d",
]
