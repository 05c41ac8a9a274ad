"""A tiny, independent protobuf wire-format writer for test caffemodels.

It shares no code with the reader (``pixelwise.weights.caffemodel`` uses the protobuf package):
fields are written by hand as varints and length-delimited records, with the field numbers of
BVLC ``caffe.proto`` (and the DeconvNet fork's ``BN`` layer), so the tests check the reader
against the real file format, not against itself.
"""

from __future__ import annotations

import struct

import numpy as np

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
# V1LayerParameter.LayerType values
V1_TYPES = {"Convolution": 4, "InnerProduct": 14, "ReLU": 18, "Pooling": 17, "Deconvolution": 39,
            "Unpooling": 42, "BN": 43}


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # two's complement, as protobuf encodes negative int32/int64
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint((field << 3) | wire)


def f_varint(field: int, value: int) -> bytes:
    return key(field, VARINT) + varint(value)


def f_bytes(field: int, payload: bytes) -> bytes:
    return key(field, LEN) + varint(len(payload)) + payload


def f_string(field: int, text: str) -> bytes:
    return f_bytes(field, text.encode())


def blob(array: np.ndarray, *, legacy: bool = False, packed: bool = True, double: bool = False) -> bytes:
    """A BlobProto: shape as BlobShape (field 7) or legacy num/channels/height/width (1-4),
    values as packed/unpacked float (field 5) or packed double (field 8)."""
    a = np.asarray(array)
    out = b""
    if legacy:
        dims = [1] * (4 - a.ndim) + list(a.shape)
        assert len(dims) == 4
        for field, d in zip((1, 2, 3, 4), dims):
            out += f_varint(field, int(d))
    else:
        # BlobShape { repeated int64 dim = 1 [packed] }; an empty BlobShape is a scalar
        dims = b"".join(varint(int(d)) for d in a.shape)
        out += f_bytes(7, f_bytes(1, dims) if a.ndim else b"")
    flat = a.reshape(-1)
    if double:
        out += f_bytes(8, struct.pack(f"<{flat.size}d", *flat.astype(np.float64)))
    elif packed:
        out += f_bytes(5, flat.astype("<f4").tobytes())
    else:
        out += b"".join(key(5, FIXED32) + struct.pack("<f", float(v)) for v in flat)
    return out


def layer_new(name: str, type_: str, blobs: list[np.ndarray], *, bn_eps: float | None = None,
              scale_bias: bool | None = None, **blob_kw) -> bytes:
    """A new-style LayerParameter: name 1, type 2 (string), bottom 3, top 4, blobs 7."""
    out = f_string(1, name) + f_string(2, type_) + f_string(3, "in") + f_string(4, name)
    out += b"".join(f_bytes(7, blob(b, **blob_kw)) for b in blobs)
    if bn_eps is not None:  # batch_norm_param (139) { eps (3) }
        out += f_bytes(139, key(3, FIXED32) + struct.pack("<f", bn_eps))
    if scale_bias is not None:  # scale_param (142) { bias_term (4) }
        out += f_bytes(142, f_varint(4, int(scale_bias)))
    return out


def layer_v1(name: str, type_: str, blobs: list[np.ndarray], *, bn_mode: int | None = None, **blob_kw) -> bytes:
    """A V1LayerParameter: bottom 2, top 3, name 4, type 5 (enum), blobs 6, fork bn_param 45."""
    out = f_string(2, "in") + f_string(3, name) + f_string(4, name) + f_varint(5, V1_TYPES[type_])
    out += b"".join(f_bytes(6, blob(b, legacy=True, **blob_kw)) for b in blobs)
    if bn_mode is not None:  # bn_param { bn_mode (3) }
        out += f_bytes(45, f_varint(3, bn_mode))
    return out


def net(layers: list[tuple], *, v1: bool, name: str = "test_net", **blob_kw) -> bytes:
    """A NetParameter: name 1, V1 layers 2 or new layer 100. ``layers``: (name, type, blobs[, extra])."""
    out = f_string(1, name)
    for entry in layers:
        lname, ltype, lblobs = entry[:3]
        extra = entry[3] if len(entry) > 3 else {}
        if v1:
            out += f_bytes(2, layer_v1(lname, ltype, lblobs, **extra, **blob_kw))
        else:
            out += f_bytes(100, layer_new(lname, ltype, lblobs, **extra, **blob_kw))
    return out
