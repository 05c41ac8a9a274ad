"""Image and mask reading for the formats people actually have."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pixelwise.data.io import read_image, read_mask, write_image, write_mask
from pixelwise.data.palette import IGNORE_COLOR, VOC_CLASSES, colorize, overlay, voc_palette
from pixelwise.errors import DataError, PixelwiseError


def _rgb(h=6, w=9, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rgb_png_roundtrip(tmp_path):
    rgb = _rgb()
    write_image(tmp_path / "a.png", rgb)
    out = read_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (6, 9, 3)
    np.testing.assert_array_equal(out, rgb)


def test_grayscale(tmp_path):
    gray = np.arange(6 * 9, dtype=np.uint8).reshape(6, 9) * 4
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (6, 9, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[0, 0, 3] = 255  # opaque red-ish
    rgba[0, 1, 3] = 0  # fully transparent -> white
    rgba[0, 2, 3] = 128  # half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (4, 5, 3)
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[0, 1]) == (255, 255, 255)
    assert abs(int(out[0, 2, 1]) - 127) <= 2 and abs(int(out[0, 2, 0]) - 227) <= 2


def test_palette_image_expanded(tmp_path):
    idx = np.array([[0, 1], [2, 15]], np.uint8)
    write_mask(tmp_path / "p.png", idx)
    out = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out, voc_palette()[idx])


def test_16bit_gray(tmp_path):
    a = np.array([[0, 257, 65535], [32768, 1000, 20000]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    expect = np.rint(a / 65535 * 255).astype(np.uint8)
    np.testing.assert_array_equal(out[:, :, 0], expect)
    np.testing.assert_array_equal(out[:, :, 2], expect)


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # pure red in CMYK
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (6, 8, 3)
    r, g, b = (int(v) for v in out[3, 4])
    assert r > 230 and g < 25 and b < 25


def test_exif_rotated_jpeg(tmp_path):
    # stored as 4 rows x 8 columns, with a bright left column; orientation 6 = rotate 90 CW to view
    raw = np.zeros((4, 8, 3), np.uint8)
    raw[:, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(raw).save(tmp_path / "e.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "e.jpg")
    assert out.shape == (8, 4, 3)  # upright: 8 rows x 4 columns
    assert out[0].mean() > 150 and out[-1].mean() < 100  # old left column is now the top row


def test_truncated_and_missing_and_garbage(tmp_path):
    write_image(tmp_path / "t.jpg", _rgb(64, 64))
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"t\.jpg: unreadable image"):
        read_image(tmp_path / "t.jpg")
    with pytest.raises(DataError, match=r"nope\.png: image file not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "x.png").write_bytes(b"not an image at all")
    with pytest.raises(PixelwiseError, match=r"x\.png"):
        read_mask(tmp_path / "x.png")


def test_mask_palette_and_gray(tmp_path):
    m = np.array([[0, 1, 255], [20, 3, 0]], np.uint8)
    write_mask(tmp_path / "p.png", m)
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), m)
    Image.fromarray(m).save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "l.png"), m)


def test_mask_rgb_decoded_via_voc_palette_or_refused(tmp_path):
    m = np.array([[0, 1, 255], [20, 3, 0]], np.uint8)
    Image.fromarray(colorize(m)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), m)
    odd = colorize(m)
    odd[0, 0] = (1, 2, 3)
    Image.fromarray(odd).save(tmp_path / "odd.png")
    with pytest.raises(DataError, match=r"odd\.png: RGB colour mask with colour \(1, 2, 3\)"):
        read_mask(tmp_path / "odd.png")
    gray3 = np.repeat(m[:, :, None], 3, axis=2)  # a gray mask saved as RGB: the value is the label
    Image.fromarray(gray3).save(tmp_path / "g3.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "g3.png"), m)


def test_mask_16bit(tmp_path):
    Image.fromarray(np.array([[0, 5], [255, 2]], np.uint16)).save(tmp_path / "m16.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m16.png"), [[0, 5], [255, 2]])
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match="label 300"):
        read_mask(tmp_path / "big.png")


def test_voc_palette_and_colorize():
    pal = voc_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    assert tuple(pal[0]) == (0, 0, 0)
    assert tuple(pal[1]) == (128, 0, 0)
    assert tuple(pal[15]) == (192, 128, 128)  # person
    assert tuple(pal[255]) == IGNORE_COLOR
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background"
    assert voc_palette(21).shape == (21, 3)
    col = colorize(np.array([[0, 255]], np.uint8), palette=np.zeros((2, 3), np.uint8))
    assert tuple(col[0, 1]) == IGNORE_COLOR
    img = np.full((1, 2, 3), 100, np.uint8)
    ov = overlay(img, np.array([[0, 1]], np.uint8), alpha=0.5)
    assert tuple(ov[0, 0]) == (100, 100, 100) and tuple(ov[0, 1]) == (114, 50, 50)
