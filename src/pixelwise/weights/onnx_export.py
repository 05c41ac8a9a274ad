"""Export any pixelwise model to ONNX and check it against ONNX Runtime.

Two exporters (``exporter=``, ``pixelwise export --exporter``):

- ``dynamo`` (torch's current exporter, ``torch.onnx.export(..., dynamo=True)``, opset 18 by
  default): ``torch.export`` captures the graph and ``onnxscript`` translates it, so it needs the
  ``onnxscript`` package. Sizes are declared as ``torch.export`` dimensions, so a graph that is
  meant to take any size is checked for that when it is made.
- ``torchscript`` (``dynamo=False``, opset 17 by default): the tracing exporter that torch has
  deprecated; it needs nothing beyond ``onnx``/``onnxruntime`` and exports in about a second.
- ``auto`` (the default): ``dynamo`` where it is available, else ``torchscript``; also
  ``torchscript`` when it fails or an opset below 18 is asked for. Each such switch adds a one-line
  note to :attr:`ExportReport.notes`.

Both exporters give the same graphs for every model family within the parity tests' tolerances
(tests/weights/test_weights_onnx.py runs every model through both). Two things need care:

- Max-unpooling (DeconvNet). Tracing ``F.max_unpool2d`` fails in current torch (its Python size
  check compares traced sizes), and ONNX ``MaxUnpool`` wants indices over the whole tensor while
  torch's are per plane. DeconvNet's unpooling (:func:`pixelwise.models.layers.max_unpool2d`)
  therefore computes the same operation as a scatter into a zero tensor (ONNX ``ScatterElements``,
  exact and size-dynamic) while an exporter traces it; both exporters get it, and nothing
  process-wide is swapped.
- Sizes. FCN graphs take any height and width (exported with dynamic H/W). DeconvNet takes sides
  that are multiples of 32 and >= 224, also dynamic. EDeconvNet pads its DeconvNet input with
  a size-dependent Python branch, so its graph is fixed to the export size (batch stays dynamic);
  so is an FCN with ``pad_input_to`` (the DeconvNet release's fcn-8s-pascal protocol), whose
  padding depends on the input size.

The file is written through a temporary file and renamed into place (:func:`pixelwise.fileio.atomic_file`),
so a failed export leaves no file behind, and a path that cannot be written fails before the
export with :class:`pixelwise.fileio.WriteError`. The model's spec, input convention and class
names are stored in the file's ``metadata_props`` (keys ``pixelwise.*``), which
:class:`pixelwise.weights.onnx_engine.OnnxModel` reads back.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from pixelwise.convention import InputConvention, get_convention
from pixelwise.errors import PixelwiseError, first_line
from pixelwise.fileio import atomic_file, ensure_writable_file
from pixelwise.models.base import Family, ModelInterface, SizeRule, as_model, fixed_size_from_text, fixed_size_text
from pixelwise.models.deconvnet import PROPOSAL_SIZE
from pixelwise.runtime import model_device

ONNX_HINT = "ONNX export needs the onnx and onnxruntime packages: pip install 'pixelwise[onnx]'"
EXPORTERS = ("auto", "dynamo", "torchscript")
TORCHSCRIPT_OPSET = 17  # the TorchScript exporter's default here
DYNAMO_OPSET = 18  # the opset torch's onnxscript library is written for (no version conversion)
INPUT_NAME, OUTPUT_NAME = "image", "logits"
META_PREFIX = "pixelwise."
# the metadata's input_sizes texts: SizeRule.to_text / from_text, fixed_size_text / fixed_size_from_text


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
    exporter: str = "torchscript"  # the exporter that wrote the file: "dynamo" or "torchscript"
    seconds: float = 0.0  # time spent exporting (without the ONNX Runtime check)
    notes: list[str] = field(default_factory=list)  # one line per switch of exporter (``auto``)

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
    """Return the ``input_sizes`` rule an exported graph of ``model`` obeys (see module doc):
    the model's size rule where one trace serves every size (never a foreign module's), else
    ``fixed:<height>x<width>``."""
    view = as_model(model)
    text = view.size_rule.to_text() if dynamic and view.dynamic_trace else None
    return text or fixed_size_text(height, width)


def example_input(convention: InputConvention, batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Return a ``(batch, 3, height, width)`` float tensor: random RGB uint8 pixels normalised as
    ``convention`` says (so magnitudes match real inputs: 0..255-ish for Caffe, ~N(0,1) for torchvision)."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (batch, height, width, 3), generator=g).float()
    x = rgb[..., [2, 1, 0]] if convention.channel_order == "BGR" else rgb
    x = x * convention.scale
    x = (x - torch.tensor(convention.mean)) / torch.tensor(convention.std)
    return x.permute(0, 3, 1, 2).contiguous()


def _default_size(model: ModelInterface) -> int:
    # the smallest side DeconvNet (an ensemble's member) runs at unpadded; 224 for any-size models
    if model.family == Family.ENSEMBLE:
        model = model.deconvnet
    return PROPOSAL_SIZE if model.size_rule.any_size else model.size_rule.minimum


def _second_size(model: ModelInterface, height: int, width: int) -> tuple[int, int]:
    # a different size the dynamic graph must also handle: odd sides, or the next valid ones up
    step = model.size_rule.multiple
    return (height + 37, width + 21) if step == 1 else (height + step, width + 2 * step)


def _metadata(model: ModelInterface, convention: InputConvention, class_names, input_sizes: str) -> dict[str, str]:
    from pixelwise import __version__

    spec = model.pixelwise_spec
    return {
        f"{META_PREFIX}model_spec": json.dumps(spec) if spec is not None else "null",
        f"{META_PREFIX}input_convention": json.dumps(convention.to_dict()),
        f"{META_PREFIX}class_names": json.dumps(list(class_names) if class_names is not None else None),
        f"{META_PREFIX}class_colors": json.dumps(model.class_colors),
        f"{META_PREFIX}input_scale": repr(float(model.input_scale)),
        f"{META_PREFIX}num_classes": "" if model.num_classes is None else str(model.num_classes),
        f"{META_PREFIX}input_sizes": input_sizes,
        f"{META_PREFIX}version": __version__,
    }


def append_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Add ``metadata`` (keys with their prefix) to the ``metadata_props`` of the ONNX file ``path``."""
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
            ref = model(x.to(model_device(model))).float().cpu()
        try:
            got = torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise PixelwiseError(f"{path}: ONNX Runtime failed at {h}x{w}: {first_line(exc)}") from None
        if got.shape != ref.shape:
            raise PixelwiseError(f"{path}: ONNX Runtime returned {tuple(got.shape)} at {h}x{w}, torch {tuple(ref.shape)}")
        diff = float((got - ref).abs().max()) if ref.numel() else 0.0
        agree = float((got.argmax(1) == ref.argmax(1)).float().mean()) if ref.numel() else 1.0
        checks.append(SizeCheck(h, w, diff, agree, float(ref.abs().max()) if ref.numel() else 0.0))
    return checks


def dynamo_unavailable() -> str | None:
    """Return why the dynamo exporter cannot run here (one line), or None when it can."""
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamo" not in params or "dynamic_shapes" not in params:
        return f"torch {torch.__version__} has no dynamo ONNX exporter (torch >= 2.5 has one)"
    if importlib.util.find_spec("onnxscript") is None:
        return "onnxscript is not installed (pip install onnxscript)"
    return None


def choose_exporter(exporter: str, opset: int | None) -> tuple[str, list[str]]:
    """Resolve ``exporter`` (``auto``, ``dynamo`` or ``torchscript``) for ``opset`` (None = the
    exporter's default) into the exporter to try first and the notes on why ``auto`` did not pick
    ``dynamo``. Raises :class:`PixelwiseError` when ``dynamo`` is asked for and cannot be used."""
    if exporter not in EXPORTERS:
        raise PixelwiseError(f"unknown ONNX exporter {exporter!r}; valid: {', '.join(EXPORTERS)}")
    if exporter == "torchscript":
        return "torchscript", []
    missing = dynamo_unavailable()
    low_opset = opset is not None and opset < DYNAMO_OPSET
    if exporter == "dynamo":
        if low_opset:
            raise PixelwiseError(
                f"the dynamo exporter writes opset >= {DYNAMO_OPSET}, got {opset}; use --exporter torchscript "
                "for older opsets"
            )
        if missing:
            raise PixelwiseError(f"the dynamo exporter cannot run: {missing}; or use --exporter torchscript")
        return "dynamo", []
    if missing:
        return "torchscript", [f"the dynamo exporter is not available, {missing}: used the TorchScript exporter"]
    if low_opset:
        note = f"opset {opset} is below the dynamo exporter's {DYNAMO_OPSET}: used the TorchScript exporter"
        return "torchscript", [note]
    return "dynamo", []


@contextlib.contextmanager
def _quiet_export():
    """Silence the exporters' warnings and log lines (deprecation, tracer and translation chatter,
    "torchvision is not installed"): the ONNX Runtime check is what tells whether the file is right."""
    names = ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir")
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _dynamic_shapes(input_sizes: str) -> tuple[dict[int, object]]:
    """The ``torch.export`` dimensions of the input for an ``input_sizes`` rule: batch always
    dynamic; height/width any size, multiples of 32 from the model's smallest side, or fixed."""
    from torch.export import Dim

    dims: dict[int, object] = {0: Dim("batch", min=1)}
    rule = SizeRule.from_text(input_sizes)  # None: a fixed size
    if rule is not None and rule.any_size:
        dims.update({2: Dim("height", min=1), 3: Dim("width", min=1)})
    elif rule is not None:  # multiples of 32 from the model's smallest side
        side = rule.minimum
        dims.update({2: 32 * Dim("height_32", min=side // 32), 3: 32 * Dim("width_32", min=side // 32)})
    return (dims,)


def _first_line(exc: BaseException) -> str:
    """The most telling line of an exporter's exception: its root cause's first line."""
    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    return f"{type(root).__name__}: {first_line(root)}"


def _check_dynamic_axes(program, input_sizes: str) -> None:
    """Raise if the dynamo exporter fixed an input axis that ``input_sizes`` says is dynamic
    (``torch.onnx`` narrows the declared dimensions when a guard fails instead of failing)."""
    # torch's ONNXProgram, whose attributes differ between torch versions: it may lack these
    graph = getattr(getattr(program, "model", None), "graph", None)
    if graph is None:  # an ONNXProgram without its IR model: nothing to check
        return
    shape = graph.inputs[0].shape
    one_size = fixed_size_from_text(input_sizes) is not None
    axes = {0: "batch"} if one_size else {0: "batch", 2: "height", 3: "width"}
    if shape is None:
        return
    fixed = [f"{name} to {shape[axis]}" for axis, name in axes.items() if isinstance(shape[axis], int)]
    if fixed:
        raise RuntimeError(f"the exported graph fixed the {', '.join(fixed)}")


def _run_exporter(kind: str, model: nn.Module, x: torch.Tensor, file: Path, opset: int, input_sizes: str) -> None:
    """Write ``model`` traced on ``x`` to ``file`` with the ``kind`` exporter."""
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}
    with _quiet_export(), torch.no_grad():
        if kind == "dynamo":
            program = torch.onnx.export(
                model, (x,), str(file), dynamo=True, opset_version=opset,
                dynamic_shapes=_dynamic_shapes(input_sizes),
                external_data=False,  # one file (every pixelwise model is < 2 GB)
                optimize=True, verbose=False, **names,
            )
            _check_dynamic_axes(program, input_sizes)
            return
        dyn = {0: "batch"}
        if fixed_size_from_text(input_sizes) is None:
            dyn.update({2: "height", 3: "width"})
        # torch >= 2.9 defaults to the dynamo exporter; ask for the TorchScript one
        extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        torch.onnx.export(
            model, (x,), str(file), opset_version=opset, dynamic_axes={INPUT_NAME: dyn, OUTPUT_NAME: dyn},
            do_constant_folding=True, **names, **extra,
        )


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    height: int | None = None,
    width: int | None = None,
    dynamic: bool = True,
    opset: int | None = None,
    check: bool = True,
    class_names: list[str] | None = None,
    input_convention: InputConvention | None = None,
    exporter: str = "auto",
) -> ExportReport:
    """Export ``model`` (``(N, 3, H, W)`` -> ``(N, C, H, W)`` logits) to ONNX at ``path``.

    The graph is made at ``height x width`` (default 224x224); batch is always dynamic, and H/W
    too where the model allows it (``dynamic=True``; see :func:`input_sizes_of`). ``exporter`` is
    ``auto`` (dynamo where available, else or on failure TorchScript; see the module doc),
    ``dynamo`` or ``torchscript``; ``opset`` defaults to the exporter's (18 dynamo, 17 TorchScript).
    With ``check`` the file is run in ONNX Runtime at the export size and, for dynamic graphs, at a
    second size, and compared with the torch model; the differences are in the returned
    :class:`ExportReport`. Raises :class:`PixelwiseError` (one line) for a bad size, an unusable
    path (:class:`pixelwise.fileio.WriteError`) or a failed export.
    """
    _require_onnx()
    kind, notes = choose_exporter(exporter, opset)
    path = Path(path)
    view = as_model(model)  # what the model says; the module itself is what is exported
    height = height or _default_size(view)
    width = width or height
    view.size_rule.check(height, width, f"{type(model).__name__} export", "set --size")
    ensure_writable_file(path)  # before the export, which takes seconds to minutes
    convention = get_convention(input_convention or view.input_convention)
    class_names = class_names if class_names is not None else view.class_names
    input_sizes = input_sizes_of(view, height, width, dynamic)
    was_training = model.training
    model.eval()
    x = example_input(convention, 1, height, width).to(model_device(model))
    try:
        with atomic_file(path) as tmp:
            start = time.perf_counter()
            try:
                _run_exporter(kind, model, x, tmp, opset or _default_opset(kind), input_sizes)
            except (OSError, KeyboardInterrupt):
                raise
            except Exception as exc:
                if exporter != "auto" or kind != "dynamo":
                    raise PixelwiseError(f"{path}: the {kind} exporter failed: {_first_line(exc)}") from exc
                notes.append(f"the dynamo exporter failed ({_first_line(exc)}): used the TorchScript exporter")
                kind = "torchscript"
                try:
                    _run_exporter(kind, model, x, tmp, opset or _default_opset(kind), input_sizes)
                except (OSError, KeyboardInterrupt):
                    raise
                except Exception as exc2:
                    raise PixelwiseError(f"{path}: both exporters failed; torchscript: {_first_line(exc2)}") from exc2
            seconds = time.perf_counter() - start
            append_metadata(tmp, _metadata(view, convention, class_names, input_sizes))
        report = ExportReport(
            str(path), opset or _default_opset(kind), input_sizes, fixed_size_from_text(input_sizes) is None,
            path.stat().st_size, exporter=kind, seconds=seconds, notes=notes,
        )
        if check:
            sizes = [(height, width)]
            if report.dynamic:
                sizes.append(_second_size(view, height, width))
            report.checks = check_with_onnxruntime(model, path, sizes, convention)
    finally:
        model.train(was_training)
    return report


def _default_opset(kind: str) -> int:
    return DYNAMO_OPSET if kind == "dynamo" else TORCHSCRIPT_OPSET


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Return the ``pixelwise.*`` metadata of an exported file (keys without the prefix)."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return {p.key[len(META_PREFIX):]: p.value for p in m.metadata_props if p.key.startswith(META_PREFIX)}


__all__ = [
    "EXPORTERS",
    "ExportReport",
    "SizeCheck",
    "check_with_onnxruntime",
    "choose_exporter",
    "dynamo_unavailable",
    "example_input",
    "export_onnx",
    "input_sizes_of",
    "read_metadata",
]
