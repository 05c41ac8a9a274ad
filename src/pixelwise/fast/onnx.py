"""The ONNX Runtime engine: export with :mod:`pixelwise.weights.onnx_export`, run with
:class:`pixelwise.weights.onnx_engine.OnnxModel`.

The graph is exported from the model after batch-norm folding (ONNX Runtime fuses Conv+BN itself
but not ConvTranspose+BN), traced at 224x224 (or the smallest valid size above) with dynamic
batch, height and width, with the TorchScript exporter (:data:`ENGINE_EXPORTER`: the faster one;
the dynamo exporter if torch has no TorchScript one), and kept in the engine cache
(:mod:`pixelwise.fast.engine_cache`) so that later processes skip the export.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pixelwise.errors import PixelwiseError
from pixelwise.fileio import WriteError
from pixelwise.models.base import ModelInterface

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


def export_side(model: ModelInterface) -> int:
    """Return the side the engine's graph is traced at: 224, or the smallest valid side above it
    (a DeconvNet with proposals larger than 224)."""
    return model.valid_size(EXPORT_SIDE, EXPORT_SIDE)[0]


def export_graph(model: ModelInterface, path: Path) -> None:
    """Export ``model``'s fp32 graph to ``path`` as the engines run it: traced at :func:`export_side`
    with dynamic batch and sizes, by :data:`ENGINE_EXPORTER` (``auto`` if that one fails)."""
    from pixelwise.weights.onnx_export import export_onnx

    side = export_side(model)
    try:
        export_onnx(model, path, height=side, width=side, dynamic=True, check=False, exporter=ENGINE_EXPORTER)
    except WriteError:
        raise
    except PixelwiseError:
        export_onnx(model, path, height=side, width=side, dynamic=True, check=False, exporter="auto")


def onnx_engine(model: ModelInterface, *, threads: int | None = None, key: str | None = None):
    """Return an ``OnnxModel`` of ``model`` (eval, fp32, CPU): ``(N,3,H,W)`` -> ``(N,C,H,W)``.

    ``key``: the engine-cache key of the model (:func:`pixelwise.fast.engine_cache.engine_key`,
    computed from the weights before any rewrite); with it the graph comes from the cache, exported
    and stored there on a miss. The returned object's ``cache_status`` says ``hit``, ``built`` or
    ``off``."""
    if not onnxruntime_available():
        raise PixelwiseError("engine onnxruntime needs the onnx extra: pip install 'pixelwise[onnx]'")
    from pixelwise.fast.engine_cache import cache_enabled, load_or_build
    from pixelwise.weights.onnx_engine import OnnxModel

    def load(path: Path, **kwargs) -> OnnxModel:
        return OnnxModel(path, threads=threads, **kwargs)

    if key is not None and cache_enabled():
        session, built = load_or_build(key, lambda path: export_graph(model, path), load)
        session.cache_status = "built" if built else "hit"
        return session
    with tempfile.TemporaryDirectory(prefix="pixelwise-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_graph(model, path)
        session = load(path)
    session.cache_status = "off"
    return session
