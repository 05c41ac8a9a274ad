"""The ONNX Runtime engine: export with :mod:`pixelwise.weights.onnx_export`, run with
:class:`pixelwise.weights.onnx_engine.OnnxModel`.

The graph is exported from the model after batch-norm folding (ONNX Runtime fuses Conv+BN itself
but not ConvTranspose+BN), traced at 224x224 with dynamic batch, height and width, written to a
temporary file that is deleted once the session has loaded it, with the TorchScript exporter
(:data:`ENGINE_EXPORTER`: the faster one; the dynamo exporter if torch has no TorchScript one).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from torch import nn

from pixelwise.errors import PixelwiseError
from pixelwise.fileio import WriteError

EXPORT_SIDE = 224  # valid for every model (DeconvNet needs multiples of 32, >= 224)
# The engine's graph is a temporary file nobody sees, so it takes the faster exporter: TorchScript
# exports a tiny model in ~0.5 s and full-width FCN-8s in ~12 s, the dynamo exporter in ~8 s and
# ~22 s (2-core CPU); both give the same results (tests/weights/test_weights_onnx.py). A torch
# without the TorchScript exporter gets ``auto`` (dynamo).
ENGINE_EXPORTER = "torchscript"


def onnxruntime_available() -> bool:
    """Return True when ``onnxruntime`` and ``onnx`` can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_engine(model: nn.Module, *, threads: int | None = None):
    """Export ``model`` (eval, fp32, CPU) and return an ``OnnxModel``: ``(N,3,H,W)`` -> ``(N,C,H,W)``."""
    if not onnxruntime_available():
        raise PixelwiseError("engine onnxruntime needs the onnx extra: pip install 'pixelwise[onnx]'")
    from pixelwise.weights.onnx_engine import OnnxModel
    from pixelwise.weights.onnx_export import export_onnx

    with tempfile.TemporaryDirectory(prefix="pixelwise-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            export_onnx(model, path, height=EXPORT_SIDE, width=EXPORT_SIDE, dynamic=True, check=False,
                        exporter=ENGINE_EXPORTER)
        except WriteError:
            raise
        except PixelwiseError:
            export_onnx(model, path, height=EXPORT_SIDE, width=EXPORT_SIDE, dynamic=True, check=False,
                        exporter="auto")
        return OnnxModel(path, threads=threads)
