"""The part of Caffe's ``caffe.proto`` schema needed to read weights, built at runtime.

Only the messages and fields a ``.caffemodel`` reader needs are declared; protobuf skips every
other field on the wire. Field numbers follow BVLC Caffe's ``caffe.proto``:

- ``NetParameter``: ``name`` 1, V1 ``layers`` 2 (``V1LayerParameter``), new ``layer`` 100.
- ``LayerParameter`` (new): ``name`` 1, ``type`` 2 (a string), ``bottom`` 3, ``top`` 4, ``blobs`` 7,
  ``batch_norm_param`` 139 (``eps`` 3), ``scale_param`` 142 (``bias_term`` 4).
- ``V1LayerParameter``: ``bottom`` 2, ``top`` 3, ``name`` 4, ``type`` 5 (an enum), ``blobs`` 6,
  and ``bn_param`` 45 (``bn_mode`` 3) of the DeconvNet authors' Caffe fork.
- ``BlobProto``: legacy ``num`` 1, ``channels`` 2, ``height`` 3, ``width`` 4, ``data`` 5 (float),
  ``shape`` 7 (``BlobShape``: ``dim`` 1, packed int64), ``double_data`` 8.

Enums are declared as plain integers so that values from forks (e.g. the DeconvNet fork's
``BN = 43``) survive parsing; :data:`V1_LAYER_TYPES` names them.
"""

from __future__ import annotations

from functools import lru_cache

from pixelwise.errors import PixelwiseError

INSTALL_HINT = "reading .caffemodel files needs the protobuf package: pip install 'pixelwise[caffe]'"

# V1LayerParameter.LayerType values (BVLC caffe.proto) that carry weights, plus the DeconvNet
# fork's additions (HyeonwooNoh/caffe: BN = 43, UNPOOLING = 42).
V1_LAYER_TYPES: dict[int, str] = {
    4: "Convolution",
    6: "Dropout",
    14: "InnerProduct",
    15: "LRN",
    17: "Pooling",
    18: "ReLU",
    20: "Softmax",
    21: "SoftmaxWithLoss",
    25: "Eltwise",
    39: "Deconvolution",
    40: "Crop",
    42: "Unpooling",
    43: "BN",
}
# the fork's BNParameter.BNMode
BN_MODES = {0: "LEARN", 1: "INFERENCE"}

_PACKAGE = "pixelwise_caffe"


def _require_protobuf():
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:  # pragma: no cover - depends on the environment
        raise PixelwiseError(INSTALL_HINT) from None
    return descriptor_pb2, descriptor_pool, message_factory


def _field(msg, name: str, number: int, kind: str, *, repeated: bool = False, type_name: str = "", packed=None):
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FieldDescriptorProto
    f = msg.field.add()
    f.name = name
    f.number = number
    f.type = getattr(fdp, f"TYPE_{kind.upper()}")
    f.label = fdp.LABEL_REPEATED if repeated else fdp.LABEL_OPTIONAL
    if type_name:
        f.type_name = f".{_PACKAGE}.{type_name}"
    if packed is not None:
        f.options.packed = packed
    return f


@lru_cache(maxsize=1)
def caffe_messages() -> dict:
    """Return ``{"NetParameter": cls, "BlobProto": cls, ...}``: message classes built at runtime.

    Raises :class:`PixelwiseError` naming the install command when protobuf is missing.
    """
    descriptor_pb2, descriptor_pool, message_factory = _require_protobuf()
    fd = descriptor_pb2.FileDescriptorProto()
    fd.name = "pixelwise_caffe_subset.proto"
    fd.package = _PACKAGE
    fd.syntax = "proto2"

    m = fd.message_type.add(name="BlobShape")
    _field(m, "dim", 1, "int64", repeated=True, packed=True)

    m = fd.message_type.add(name="BlobProto")
    _field(m, "num", 1, "int32")
    _field(m, "channels", 2, "int32")
    _field(m, "height", 3, "int32")
    _field(m, "width", 4, "int32")
    # proto2 parsers accept packed and unpacked encodings of repeated scalars alike
    _field(m, "data", 5, "float", repeated=True, packed=True)
    _field(m, "shape", 7, "message", type_name="BlobShape")
    _field(m, "double_data", 8, "double", repeated=True, packed=True)

    m = fd.message_type.add(name="BatchNormParameter")
    _field(m, "use_global_stats", 1, "bool")
    _field(m, "eps", 3, "float")

    m = fd.message_type.add(name="ScaleParameter")
    _field(m, "axis", 1, "int32")
    _field(m, "num_axes", 2, "int32")
    _field(m, "bias_term", 4, "bool")

    m = fd.message_type.add(name="BNParameter")  # DeconvNet fork
    _field(m, "bn_mode", 3, "int32")

    m = fd.message_type.add(name="LayerParameter")
    _field(m, "name", 1, "string")
    _field(m, "type", 2, "string")
    _field(m, "bottom", 3, "string", repeated=True)
    _field(m, "top", 4, "string", repeated=True)
    _field(m, "blobs", 7, "message", repeated=True, type_name="BlobProto")
    _field(m, "batch_norm_param", 139, "message", type_name="BatchNormParameter")
    _field(m, "scale_param", 142, "message", type_name="ScaleParameter")

    m = fd.message_type.add(name="V1LayerParameter")
    _field(m, "bottom", 2, "string", repeated=True)
    _field(m, "top", 3, "string", repeated=True)
    _field(m, "name", 4, "string")
    _field(m, "type", 5, "int32")  # an enum in caffe.proto; int keeps fork values
    _field(m, "blobs", 6, "message", repeated=True, type_name="BlobProto")
    _field(m, "bn_param", 45, "message", type_name="BNParameter")

    m = fd.message_type.add(name="NetParameter")
    _field(m, "name", 1, "string")
    _field(m, "layers", 2, "message", repeated=True, type_name="V1LayerParameter")
    _field(m, "layer", 100, "message", repeated=True, type_name="LayerParameter")

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    names = [m.name for m in fd.message_type]
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{n}")) for n in names}
