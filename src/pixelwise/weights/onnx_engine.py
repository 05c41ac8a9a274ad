"""Run an exported pixelwise ONNX file in ONNX Runtime behind a small torch-like interface.

``OnnxModel(path)`` is called like the torch model: ``(N, 3, H, W)`` float tensor in, ``(N, C, H,
W)`` logits tensor out. It answers the model interface (:class:`pixelwise.models.base.ModelInterface`)
from the file's metadata (its card, ``num_classes``, ``proposal_pad``, size rule), so that the same
pre- and post-processing code serves both engines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from pixelwise.convention import CAFFE_BGR, InputConvention, get_convention
from pixelwise.errors import CheckpointError, PixelwiseError, first_line
from pixelwise.models.base import ANY_SIZE, Family, ModelCard, ModelInterface, SizeRule, fixed_size_from_text
from pixelwise.weights.onnx_export import INPUT_NAME, META_PREFIX, ONNX_HINT


class OnnxModel(ModelInterface):
    """An ONNX Runtime session that behaves like a pixelwise model in eval mode.

    Run as it is, it is a :attr:`Family.GENERIC` model (one whole-image pass);
    :func:`pixelwise.optimize.load_onnx_model` runs it as the family it was exported from.

    Args:
        path: an ``.onnx`` file written by ``pixelwise export`` / :func:`export_onnx`.
        providers: ONNX Runtime execution providers (default: CPU).
        threads: intra-op threads (default: torch's thread count).
        optimized: the file already holds ONNX Runtime's optimised graph (the engine cache's
            entries): load it without optimising again.
        save_optimized: also write the optimised graph to this path (for the engine cache).
    """

    training = False
    family = Family.GENERIC

    def __init__(self, path: str | os.PathLike, *, providers: list[str] | None = None, threads: int | None = None,
                 optimized: bool = False, save_optimized: str | os.PathLike | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - depends on the environment
            raise PixelwiseError(ONNX_HINT) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such ONNX file")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or max(1, torch.get_num_threads())
        if optimized:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if save_optimized is not None:
            opts.optimized_model_filepath = str(save_optimized)
            opts.log_severity_level = 3  # its warning that the saved graph suits this machine only: the key says so
        try:
            self.session = ort.InferenceSession(
                str(self.path), opts, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own exception classes
            raise CheckpointError(f"{self.path}: not a loadable ONNX model: {first_line(exc)}") from None
        inputs = [i.name for i in self.session.get_inputs()]
        if INPUT_NAME not in inputs:
            raise CheckpointError(f"{self.path}: expected an input named {INPUT_NAME!r}, found {inputs}; "
                                  "export it with `pixelwise export`")
        meta = {
            k[len(META_PREFIX):]: v
            for k, v in self.session.get_modelmeta().custom_metadata_map.items()
            if k.startswith(META_PREFIX)
        }
        self.metadata: dict[str, str] = meta
        self.card = _card(meta)
        spec = self.card.spec or {}
        num = meta.get("num_classes") or spec.get("num_classes")
        self.num_classes: int | None = int(num) if num else None
        self.proposal_pad: str | None = spec.get("proposal_pad")  # a DeconvNet's, in its spec
        self.input_sizes: str = meta.get("input_sizes", ANY_SIZE.to_text())

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, input_sizes={self.input_sizes!r})"

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """``(H, W)`` for a fixed-size graph (EDeconvNet), else None."""
        return fixed_size_from_text(self.input_sizes)

    @property
    def size_rule(self) -> SizeRule:
        """The sizes a dynamic graph takes (any, or multiples of 32 from its smallest side). A
        fixed-size graph says :data:`ANY_SIZE` here: nothing pads to it from outside, and
        :meth:`check_input_size` rejects other sizes (see :attr:`fixed_size`)."""
        return SizeRule.from_text(self.input_sizes) or ANY_SIZE

    def check_input_size(self, height: int, width: int) -> None:
        """Return None when the graph accepts ``height x width``, else raise :class:`PixelwiseError`."""
        fixed = self.fixed_size
        if fixed and (height, width) != fixed:
            raise PixelwiseError(
                f"{self.path}: this graph was exported for {fixed[0]}x{fixed[1]} inputs, got "
                f"{height}x{width}; use forward_any_size() or export at this size"
            )
        self.size_rule.check(height, width, f"{self.path}:", "use forward_any_size()")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, C, H, W)`` float32 logits for an ``(N, 3, H, W)`` float tensor, on ``x``'s device."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise PixelwiseError(f"{self.path}: expected an (N, 3, H, W) tensor, got {shape}")
        self.check_input_size(int(x.shape[-2]), int(x.shape[-1]))
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out = self.session.run(None, {INPUT_NAME: array})[0]
        return torch.from_numpy(out).to(x.device)

    forward = __call__

    def forward_any_size(self, x: torch.Tensor) -> torch.Tensor:
        """Pad ``x`` (bottom/right, zeros = the mean colour) to a size the graph takes, run, crop back.

        Mirrors the models' ``forward_any_size``; a fixed-size graph is padded up to its size (inputs
        larger than it raise). Returns ``(N, C, H, W)`` logits.
        """
        height, width = int(x.shape[-2]), int(x.shape[-1])
        fixed = self.fixed_size
        if fixed:
            if height > fixed[0] or width > fixed[1]:
                raise PixelwiseError(f"{self.path}: input {height}x{width} is larger than the exported {fixed[0]}x{fixed[1]}")
            target = fixed
        elif not self.size_rule.any_size:
            target = self.size_rule.valid_size(height, width)
        else:
            return self(x)
        out = self(F.pad(x, (0, target[1] - width, 0, target[0] - height)))
        return out[..., :height, :width]

    # torch-like no-ops so that code written for nn.Module runs unchanged
    def eval(self) -> "OnnxModel":
        """Return self (an ONNX graph is always in inference mode)."""
        return self

    def to(self, *args, **kwargs) -> "OnnxModel":
        """Return self (outputs follow the input's device; the session's providers pick the hardware)."""
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "OnnxModel":
        """Return self (nothing to train)."""
        return self


def _card(meta: dict[str, str]) -> ModelCard:
    """Return the model card the ``pixelwise.*`` metadata of an exported file records."""
    conv = json.loads(meta["input_convention"]) if "input_convention" in meta else None
    convention: InputConvention = get_convention(conv) if conv else CAFFE_BGR
    return ModelCard(json.loads(meta.get("model_spec", "null")), convention,
                     json.loads(meta.get("class_names", "null")), json.loads(meta.get("class_colors", "null")),
                     float(meta.get("input_scale") or 1.0))
