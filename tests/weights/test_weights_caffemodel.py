"""The .caffemodel reader against files written by an independent wire-format encoder."""

import numpy as np
import pytest

import caffe_wire as cw
from pixelwise.errors import CheckpointError
from pixelwise.weights.caffemodel import looks_like_caffemodel, read_caffemodel


def _write(tmp_path, data: bytes, name="net.caffemodel"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("v1", [False, True])
@pytest.mark.parametrize("packed", [True, False])
def test_reads_both_layer_lists_and_value_encodings(tmp_path, v1, packed):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    ip = rng.standard_normal((5, 36)).astype(np.float32)
    data = cw.net([("conv1_1", "Convolution", [w, b]), ("relu", "ReLU", []), ("fc", "InnerProduct", [ip])],
                  v1=v1, packed=packed)
    net = read_caffemodel(_write(tmp_path, data))
    assert net.name == "test_net"
    assert net.layer_format == ("layers (V1)" if v1 else "layer")
    assert net.names == ["conv1_1", "relu", "fc"]
    conv = net.get("conv1_1")
    assert conv.type == "Convolution"
    np.testing.assert_array_equal(conv.blobs[0], w)
    # V1 stores every blob as legacy num/channels/height/width: a bias is (1, 1, 1, 4)
    assert tuple(conv.blobs[1].shape) == ((1, 1, 1, 4) if v1 else (4,))
    np.testing.assert_array_equal(conv.blobs[1].reshape(-1), b)
    fc = net.get("fc")
    assert fc.type == "InnerProduct"
    assert tuple(fc.blobs[0].shape) == ((1, 1, 5, 36) if v1 else (5, 36))
    np.testing.assert_array_equal(fc.blobs[0].reshape(5, 36), ip)
    assert [layer.name for layer in net.layers if layer.blobs] == ["conv1_1", "fc"]


def test_double_data_and_scalar_blob(tmp_path):
    a = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    data = cw.net([("x", "Scale", [a, np.array(3.0)])], v1=False, double=True)
    layer = read_caffemodel(_write(tmp_path, data)).get("x")
    assert layer.blobs[0].dtype == np.float32
    np.testing.assert_allclose(layer.blobs[0], a.astype(np.float32))
    assert tuple(layer.blobs[1].shape) == () and float(layer.blobs[1]) == 3.0


def test_fork_bn_mode_and_bvlc_params_are_read(tmp_path):
    s = np.ones((1, 2, 1, 1), np.float32)
    v1 = cw.net([("bn1_1", "BN", [s, s], {"bn_mode": 1}), ("bn1_2", "BN", [s, s])], v1=True)
    net = read_caffemodel(_write(tmp_path, v1, "a.caffemodel"))
    assert net.get("bn1_1").type == "BN" and net.get("bn1_1").bn_mode == "INFERENCE"
    assert net.get("bn1_2").bn_mode is None  # not stored: the reader reports that, not a guess
    new = cw.net([("bn", "BatchNorm", [s, s, np.ones(1, np.float32)], {"bn_eps": 1e-3}),
                  ("sc", "Scale", [s, s], {"scale_bias": True})], v1=False)
    net = read_caffemodel(_write(tmp_path, new, "b.caffemodel"))
    assert net.get("bn").eps == pytest.approx(1e-3)
    assert net.get("sc").bias_term is True


def test_wrong_value_count_names_layer(tmp_path):
    good = cw.blob(np.zeros((2, 2), np.float32))
    # a BlobShape saying 3x3 with 4 values
    bad = cw.f_bytes(7, cw.f_bytes(1, cw.varint(3) + cw.varint(3))) + cw.f_bytes(5, np.zeros(4, "<f4").tobytes())
    layer = cw.f_string(1, "conv9") + cw.f_string(2, "Convolution") + cw.f_bytes(7, good) + cw.f_bytes(7, bad)
    path = _write(tmp_path, cw.f_bytes(100, layer))
    with pytest.raises(CheckpointError, match=r"conv9.*4 values.*\(3, 3\)"):
        read_caffemodel(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b'name: "VGG_ILSVRC_16_layers"\nlayers { name: "conv1_1" }', "text .prototxt"),
        (bytes(range(256)) * 4, "protobuf decode failed|no layer with weights"),
        (b"PK\x03\x04 some zip", "PyTorch"),
    ],
)
def test_not_a_caffemodel_errors_name_the_file(tmp_path, content, message):
    path = _write(tmp_path, content, "broken.caffemodel")
    with pytest.raises(CheckpointError, match=message) as err:
        read_caffemodel(path)
    assert "broken.caffemodel" in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_caffemodel(tmp_path / "nope.caffemodel")


def test_looks_like_caffemodel(tmp_path):
    data = cw.net([("c", "Convolution", [np.zeros((1, 1, 1, 1), np.float32)])], v1=True)
    assert looks_like_caffemodel(_write(tmp_path, data, "weights.bin"))
    torch_file = _write(tmp_path, b"PK\x03\x04", "vgg16.pth")
    assert not looks_like_caffemodel(torch_file)
