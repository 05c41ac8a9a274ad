"""Inference fast paths applied to an already-built model, without changing the model classes.

- :mod:`pixelwise.fast.fold`: batch norm folded into the preceding conv / transposed conv.
- :mod:`pixelwise.fast.fc`: fc6 and deconv-fc6 as matrix products when the map is exactly 7x7 / 1x1.
- :mod:`pixelwise.fast.onnx`: an ONNX Runtime engine (export + session) behind a torch-like call.

:func:`pixelwise.optimize.prepare_for_inference` combines them into ready-to-use engines.
"""

from pixelwise.fast.fc import MatmulConv2d, MatmulConvTranspose2d, use_fc_matmul
from pixelwise.fast.fold import fold_batchnorm

__all__ = ["MatmulConv2d", "MatmulConvTranspose2d", "fold_batchnorm", "use_fc_matmul"]
