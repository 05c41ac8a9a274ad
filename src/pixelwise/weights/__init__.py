"""Weights in and out: ImageNet backbone init, Caffe/torchvision import, ONNX export and runtime.

- :func:`load_backbone_weights` (``pixelwise train --backbone-weights``): torchvision VGG16(-BN)
  ``.pth`` or Caffe VGG16 ``.caffemodel`` into a model's VGG16 backbone(s).
- :func:`convert_weights` (``pixelwise convert``): FCN / DeconvNet release caffemodels (read
  without Caffe, :mod:`pixelwise.weights.caffemodel`) or a torchvision VGG16 into a pixelwise model.
- :func:`export_onnx` (``pixelwise export``) and :class:`OnnxModel` (run the file in ONNX Runtime).

Heavy optional dependencies (protobuf, onnx, onnxruntime) are imported only when used.
"""

from __future__ import annotations

from pixelwise.weights.backbone import load_backbone_weights
from pixelwise.weights.report import ImportReport, ImportRow

__all__ = [
    "ImportReport",
    "ImportRow",
    "OnnxModel",
    "convert_weights",
    "export_onnx",
    "load_backbone_weights",
    "read_caffemodel",
]


def __getattr__(name: str):
    # lazy: these pull in protobuf / onnx / onnxruntime
    if name == "convert_weights":
        from pixelwise.weights.convert import convert_weights

        return convert_weights
    if name == "read_caffemodel":
        from pixelwise.weights.caffemodel import read_caffemodel

        return read_caffemodel
    if name == "export_onnx":
        from pixelwise.weights.onnx_export import export_onnx

        return export_onnx
    if name == "OnnxModel":
        from pixelwise.weights.onnx_engine import OnnxModel

        return OnnxModel
    raise AttributeError(f"module 'pixelwise.weights' has no attribute {name!r}")
