"""Read Caffe ``.caffemodel`` weight files without Caffe.

A ``.caffemodel`` is a binary protobuf ``NetParameter``. Both layer lists are understood: the new
``layer`` (``LayerParameter``, type as a string) and the old V1 ``layers`` (``V1LayerParameter``,
type as an enum; the FCN VGG16 and DeconvNet releases use this one). Each blob becomes a numpy array
with its stored shape (``BlobShape`` or the legacy ``num/channels/height/width``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixelwise.errors import CheckpointError
from pixelwise.weights.caffe_proto import BN_MODES, V1_LAYER_TYPES, caffe_messages

# first bytes of a text .prototxt (a network definition, not weights)
_TEXT_STARTS = (b"name", b"layer", b"input", b"#", b"force_backward", b"state")


@dataclass
class CaffeLayer:
    """One layer of a caffemodel: its name, type (string) and blobs as numpy arrays.

    ``bn_mode`` is the DeconvNet fork's ``bn_param.bn_mode`` (``"LEARN"``/``"INFERENCE"``) when
    stored; ``eps`` is a BVLC ``BatchNorm`` layer's epsilon; ``bias_term`` a ``Scale`` layer's flag.
    """

    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)
    bn_mode: str | None = None
    eps: float | None = None
    bias_term: bool | None = None


@dataclass
class CaffeNet:
    """The layers of a caffemodel (those with blobs, plus parameter-free layers by name)."""

    path: str
    name: str
    layer_format: str  # "layer" (new) or "layers (V1)"
    layers: list[CaffeLayer]

    def __post_init__(self) -> None:
        self._by_name = {layer.name: layer for layer in self.layers}

    def get(self, name: str) -> CaffeLayer | None:
        """Return the layer called ``name``, or None."""
        return self._by_name.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        """Layer names in file order."""
        return [layer.name for layer in self.layers]


def _blob_array(blob, where: str) -> np.ndarray:
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:  # legacy 4-D blob
        shape = (blob.num, blob.channels, blob.height, blob.width)
    if len(blob.data):
        data = np.array(blob.data, dtype=np.float32)
    else:
        data = np.array(blob.double_data, dtype=np.float64).astype(np.float32)
    count = int(np.prod(shape))  # an empty BlobShape is a scalar (one value), as in Caffe
    if count != data.size:
        raise CheckpointError(f"{where}: blob has {data.size} values but its shape {shape} needs {count}")
    return data.reshape(shape)


def _not_caffemodel(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: not a Caffe .caffemodel weight file ({why})")


def read_caffemodel(path: str | os.PathLike) -> CaffeNet:
    """Parse ``path`` and return a :class:`CaffeNet`; blobs are float32 numpy arrays.

    Raises :class:`CheckpointError` for a missing, empty, text (``.prototxt``) or non-protobuf file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    raw = path.read_bytes()
    if not raw:
        raise _not_caffemodel(path, "the file is empty")
    if raw[:256].lstrip().startswith(_TEXT_STARTS):
        raise _not_caffemodel(path, "it is a text .prototxt network definition; pass the binary weights")
    if raw[:2] == b"PK" or raw[:1] == b"\x80":
        raise _not_caffemodel(path, "it looks like a PyTorch file; convert it as a torchvision state dict")
    msgs = caffe_messages()
    net = msgs["NetParameter"]()
    try:
        net.ParseFromString(raw)
    except Exception as exc:  # protobuf raises DecodeError (its own class per backend)
        raise _not_caffemodel(path, f"protobuf decode failed: {str(exc)[:120]}") from None
    del raw
    if len(net.layer) and len(net.layers):
        # Caffe itself refuses such files; taking one silently could drop weights
        raise _not_caffemodel(path, "it mixes the new 'layer' and the V1 'layers' lists")
    layers: list[CaffeLayer] = []
    if len(net.layer):
        fmt = "layer"
        for lp in net.layer:
            where = f"{path}: layer {lp.name!r}"
            layer = CaffeLayer(lp.name, lp.type, [_blob_array(b, where) for b in lp.blobs])
            if lp.HasField("batch_norm_param") and lp.batch_norm_param.HasField("eps"):
                layer.eps = float(lp.batch_norm_param.eps)
            if lp.HasField("scale_param") and lp.scale_param.HasField("bias_term"):
                layer.bias_term = bool(lp.scale_param.bias_term)
            layers.append(layer)
    else:
        fmt = "layers (V1)"
        for lp in net.layers:
            where = f"{path}: layer {lp.name!r}"
            type_name = V1_LAYER_TYPES.get(lp.type, f"V1 type {lp.type}")
            layer = CaffeLayer(lp.name, type_name, [_blob_array(b, where) for b in lp.blobs])
            if lp.HasField("bn_param"):
                layer.bn_mode = BN_MODES.get(lp.bn_param.bn_mode, str(lp.bn_param.bn_mode))
            layers.append(layer)
    if not any(layer.blobs for layer in layers):
        raise _not_caffemodel(path, "no layer with weights found")
    return CaffeNet(str(path), net.name, fmt, layers)


def looks_like_caffemodel(path: str | os.PathLike) -> bool:
    """Return True if ``path`` is named ``*.caffemodel`` or starts like a (binary or text) Caffe net."""
    path = Path(path)
    if path.suffix.lower() in (".caffemodel", ".prototxt"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return False
    if head.lstrip().startswith(_TEXT_STARTS):
        return True  # a text net definition: the Caffe reader explains the mistake
    head = head[:2]
    # a NetParameter starts with field 1 (name, 0x0a), 2 (V1 layers, 0x12) or 100 (layer, 0xa2 0x06)
    return head[:1] in (b"\x0a", b"\x12") or head == b"\xa2\x06"
