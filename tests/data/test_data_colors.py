"""Folder datasets with RGB colour masks: the classes file, colour decoding, `data check` on unknown
colours, `data convert` to index PNGs, and images in every format Pillow reads."""

from __future__ import annotations

import os

import numpy as np
import pytest
from data_fixtures import make_scene
from PIL import Image

from pixelwise.cli import main
from pixelwise.data import FolderDataset, build_dataset
from pixelwise.data.check import check_dataset
from pixelwise.data.classes import parse_classes, read_classes
from pixelwise.data.convert import convert_folder
from pixelwise.data.io import IMAGE_EXTENSIONS, read_mask, readable_image_extensions, write_image
from pixelwise.errors import DataError

# label -> colour of the coloured fixture; (0, 0, 192) is void
COLOURS = {0: (0, 0, 0), 1: (128, 64, 128), 2: (244, 35, 232), 3: (70, 70, 70)}
VOID = (0, 0, 192)
CLASSES_TXT = """\
# CamVid-like classes, both syntaxes
background   0 0 0
road         128 64 128
sidewalk     #F423E8
70 70 70     building
void         0 0 192
"""


def _paint(mask: np.ndarray) -> np.ndarray:
    """The RGB colour mask of an index mask (255 -> the void colour)."""
    rgb = np.zeros(mask.shape + (3,), np.uint8)
    for label, colour in COLOURS.items():
        rgb[mask == label] = colour
    rgb[mask == 255] = VOID
    return rgb


def _coloured_folder(base, stems=("a", "b", "c"), exts=(".jpg", ".png", ".jpg")):
    """Write images + RGB colour masks + a coloured classes.txt; return (root, {stem: labels})."""
    root = base / "camvid"
    truth = {}
    for k, (stem, ext) in enumerate(zip(stems, exts, strict=True)):
        image, mask, _ = make_scene(400 + k, num_classes=4)
        write_image(root / "images" / f"{stem}{ext}", image)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_paint(mask)).save(root / "masks" / f"{stem}.png")
        truth[stem] = mask
    (root / "classes.txt").write_text(CLASSES_TXT)
    return root, truth


def _plant_unknown(root, stem, colours):
    """Paint ``{colour: n_pixels}`` into the first row(s) of a colour mask."""
    path = root / "masks" / f"{stem}.png"
    rgb = np.array(Image.open(path).convert("RGB"))
    flat = rgb.reshape(-1, 3)
    start = 0
    for colour, n in colours.items():
        flat[start : start + n] = colour
        start += n
    Image.fromarray(rgb).save(path)


# -- the classes file ----------------------------------------------------------------------------


def test_classes_file_both_syntaxes():
    c = parse_classes(CLASSES_TXT)
    assert c.names == ["background", "road", "sidewalk", "building"]
    assert c.colors == [[(0, 0, 0)], [(128, 64, 128)], [(244, 35, 232)], [(70, 70, 70)]]
    assert c.void_colors == [VOID] and c.has_colors
    np.testing.assert_array_equal(c.palette(), [COLOURS[i] for i in range(4)])
    assert tuple(c.full_palette()[255]) == VOID

    # CamVid label_colors.txt (colour first, tabs), CVAT labelmap style, merged colours, IGNORE
    camvid = parse_classes(
        "64 128 64\tAnimal\n192 0 128\tArchway\nroad: 128,64,128::\nroad 128 64 129\n"
        "0 0 0\tVoid\nIGNORE #010203\n#ABCDEF tree\n"
    )
    assert camvid.names == ["Animal", "Archway", "road", "tree"]
    assert camvid.colors[2] == [(128, 64, 128), (128, 64, 129)]
    assert camvid.colors[3] == [(0xAB, 0xCD, 0xEF)]
    assert camvid.void_colors == [(0, 0, 0), (1, 2, 3)]

    # names only, as before (spaces in names allowed, "void" is an ordinary name there)
    plain = parse_classes("background\npotted plant\n\nvoid\n")
    assert plain.names == ["background", "potted plant", "void"] and not plain.has_colors
    assert plain.color_map() is None

    # the canonical text reads back the same
    again = parse_classes(camvid.to_text())
    assert (again.names, again.colors, again.void_colors) == (
        camvid.names,
        camvid.colors,
        camvid.void_colors,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bg 0 0 0\nroad\n", r"classes\.txt:2: 'road' has no colour, but line 1 has one"),
        ("bg\ncat\ndog 1 2 3\n", r"classes\.txt:3: 'dog' has a colour, but line 1 \('bg'\) has none"),
        ("bg 0 0 0\n\nroad 128 300 1\n", r"classes\.txt:3: colour value 300 outside 0\.\.255"),
        ("bg 0 0 0\nroad #80408\n", r"classes\.txt:2: bad colour '#80408'"),
        (
            "bg 0 0 0\nroad 0 0 0\n",
            r"classes\.txt:2: colour \(0, 0, 0\) #000000 of 'road' is already used by 'bg' \(line 1\)",
        ),
        ("bg 0 0 0\nvoid 0 0 0\n", r"classes\.txt:2: .* already used by 'bg'"),
        ("void 1 2 3\n", r"classes\.txt: only void colours given"),
        ("# nothing\n\n", r"classes\.txt: class list is empty"),
    ],
)
def test_classes_file_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "classes.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        read_classes(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_classes_file_limit_and_missing(tmp_path):
    with pytest.raises(DataError, match="256 classes; at most 255"):
        parse_classes("\n".join(f"c{i} {i // 256} {i % 256} 7" for i in range(256)))
    with pytest.raises(DataError, match=r"nope\.txt: classes file not found"):
        read_classes(tmp_path / "nope.txt")


# -- decoding RGB masks ----------------------------------------------------------------------------


def test_rgb_masks_mapped_with_void(tmp_path):
    root, truth = _coloured_folder(tmp_path)
    ds = build_dataset("folder", root=root, split="all")
    assert ds.class_names == ["background", "road", "sidewalk", "building"]
    assert ds.num_classes == 4
    np.testing.assert_array_equal(ds.palette, [COLOURS[i] for i in range(4)])
    for i, stem in enumerate(ds.names):
        s = ds[i]
        assert s["mask"].dtype == np.uint8
        np.testing.assert_array_equal(s["mask"], truth[stem])  # incl. void -> 255
        assert (s["mask"] == 255).any()


def test_palette_and_gray_masks_stay_index_masks(tmp_path):
    root, truth = _coloured_folder(tmp_path)
    # a palette PNG with VOC colours (not the class colours) and a gray PNG: both are indices
    from pixelwise.data.io import write_mask

    write_mask(root / "masks" / "a.png", truth["a"])
    Image.fromarray(truth["b"]).save(root / "masks" / "b.png")
    ds = FolderDataset(root)
    np.testing.assert_array_equal(ds[ds.names.index("a")]["mask"], truth["a"])
    np.testing.assert_array_equal(ds[ds.names.index("b")]["mask"], truth["b"])


def test_unknown_colour_is_one_line_error_or_ignored(tmp_path):
    root, truth = _coloured_folder(tmp_path)
    _plant_unknown(root, "b", {(1, 2, 3): 7, (9, 9, 9): 2})
    ds = FolderDataset(root)
    with pytest.raises(DataError) as info:
        ds[ds.names.index("b")]
    msg = str(info.value)
    assert msg.startswith(f"{root / 'masks' / 'b.png'}: colour (1, 2, 3) #010203 (7 px; 2 colours")
    assert "classes.txt" in msg and "unknown_colors='ignore'" in msg and "\n" not in msg
    ok = FolderDataset(root, unknown_colors="ignore")
    mask = ok[ok.names.index("b")]["mask"]
    assert (mask.ravel()[:9] == 255).all()
    np.testing.assert_array_equal(mask.ravel()[9:], truth["b"].ravel()[9:])
    with pytest.raises(DataError, match="unknown_colors must be one of error, ignore"):
        FolderDataset(root, unknown_colors="warn")
    # read_mask with the colour map directly
    cmap = read_classes(root / "classes.txt").color_map()
    np.testing.assert_array_equal(read_mask(root / "masks" / "a.png", cmap), truth["a"])


def test_classes_file_option(tmp_path):
    root, truth = _coloured_folder(tmp_path)
    (root / "classes.txt").rename(tmp_path / "label_colors.txt")
    ds = FolderDataset(root, classes_file=tmp_path / "label_colors.txt")
    np.testing.assert_array_equal(ds[0]["mask"], truth[ds.names[0]])
    with pytest.raises(DataError, match=r"RGB colour mask with colour"):
        FolderDataset(root, num_classes=4)[1]  # without the colours an RGB mask is refused


# -- data check --------------------------------------------------------------------------------------


def test_check_reports_unknown_colours(tmp_path, capsys):
    root, _ = _coloured_folder(tmp_path)
    _plant_unknown(root, "a", {(1, 2, 3): 5})
    _plant_unknown(root, "c", {(1, 2, 3): 4, (250, 0, 0): 3})
    code = main(["data", "check", str(root), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert (
        f"  {root / 'masks' / 'a.png'}: 1 colour(s) in no class of classes.txt (5 px): "
        "(1, 2, 3) #010203 5 px" in out
    )
    assert (
        f"  {root / 'masks' / 'c.png'}: 2 colour(s) in no class of classes.txt (7 px): "
        "(1, 2, 3) #010203 4 px, (250, 0, 0) #FA0000 3 px" in out
    )
    assert "(2 colour(s), 12 px in 2 mask(s)" in out
    lines = out.splitlines()
    totals = [ln.split() for ln in lines if ln.startswith("  (1, 2, 3) #010203")]
    assert totals == [["(1,", "2,", "3)", "#010203", "9", "2"]]
    assert any(ln.split()[:4] == ["-", "(no", "class)", "12"] for ln in lines)
    assert "FAILED: 1 of 3 items good, 2 problem(s)" in out
    assert "note: class colours from" in out and "1 void colour(s) -> 255" in out

    report = check_dataset(root, progress=False)
    assert report.unknown_colors == {0x010203: [9, 2], 0xFA0000: [3, 1]}
    # ignore row counts void pixels only, not the unknown ones
    void_px = sum(int((m == 255).sum()) for m in _truths(root))
    assert int(report.pixels[255]) == void_px - 12


def _truths(root):
    cmap = read_classes(root / "classes.txt").color_map()
    return [cmap.decode(np.array(Image.open(p).convert("RGB")))[0] for p in sorted((root / "masks").iterdir())]


def test_check_clean_coloured_folder_and_classes_flag(tmp_path, capsys):
    root, _ = _coloured_folder(tmp_path)
    code = main(["data", "check", str(root), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "road" in out and "building" in out and "(no class)" not in out
    (root / "classes.txt").rename(tmp_path / "colours.txt")
    code = main(["data", "check", str(root), "--no-progress", "--classes", str(tmp_path / "colours.txt")])
    assert code == 0
    code = main(["data", "check", str(root), "--no-progress"])  # no colours: RGB masks refused
    out = capsys.readouterr().out
    assert code == 1 and "RGB colour mask with colour" in out
    (tmp_path / "colours.txt").write_text("bg 0 0 0\nroad\n")
    code = main(["data", "check", str(root), "--no-progress", "--classes", str(tmp_path / "colours.txt")])
    err = capsys.readouterr().err
    assert code == 2 and "colours.txt:2: 'road' has no colour" in err and err.count("\n") == 1


# -- data convert ------------------------------------------------------------------------------------


def test_convert_round_trip(tmp_path, capsys):
    root, truth = _coloured_folder(tmp_path)
    (root / "splits").mkdir()
    (root / "splits" / "mine.txt").write_text("c\na\n")
    out = tmp_path / "converted"
    code = main(["data", "convert", str(root), "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert f"OK: 3 of 3 masks written to {out / 'masks'}, 0 problem(s)" in text
    assert "classes: 4 from" in text and "1 void colour(s) -> 255" in text
    for stem, labels in truth.items():
        img = Image.open(out / "masks" / f"{stem}.png")
        assert img.mode == "P"
        np.testing.assert_array_equal(np.array(img), labels)
        pal = np.array(img.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(pal[:4], [COLOURS[i] for i in range(4)])
        assert tuple(pal[255]) == VOID
        # the converted mask looks like the original colour mask
        np.testing.assert_array_equal(
            np.array(img.convert("RGB")), np.array(Image.open(root / "masks" / f"{stem}.png"))
        )
    assert (out / "images").is_symlink()
    assert (out / "splits" / "mine.txt").read_text() == "c\na\n"
    converted = FolderDataset(out)
    original = FolderDataset(root)
    assert converted.class_names == original.class_names and converted.names == original.names
    np.testing.assert_array_equal(converted.palette, original.palette)
    for i in range(len(original)):
        np.testing.assert_array_equal(converted[i]["mask"], original[i]["mask"])
        np.testing.assert_array_equal(converted[i]["image"], original[i]["image"])
    assert FolderDataset(out, "mine").names == ["c", "a"]
    # no temporary files left behind
    assert not [p for p in (out / "masks").iterdir() if p.name.startswith(".")]

    # existing output is not overwritten without --overwrite
    code = main(["data", "convert", str(root), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "already holds files; pass --overwrite" in err and err.count("\n") == 1
    code = main(["data", "convert", str(root), "--out", str(out), "--no-progress", "--overwrite"])
    assert code == 0
    code = main(["data", "convert", str(root), "--out", str(root), "--no-progress"])
    assert code == 2 and "must be a new folder" in capsys.readouterr().err


def test_convert_bad_files_and_ignore(tmp_path, capsys):
    root, truth = _coloured_folder(tmp_path)
    _plant_unknown(root, "b", {(1, 2, 3): 6})
    (root / "masks" / "c.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    code = main(["data", "convert", str(root), "--out", str(out), "--no-progress", "--images", "copy"])
    text = capsys.readouterr().out
    assert code == 1
    bad = [ln for ln in text.splitlines() if ln.startswith("  /")]
    assert len(bad) == 2, text
    assert (
        f"{root / 'masks' / 'b.png'}: 1 colour(s) in no class of classes.txt: "
        "(1, 2, 3) #010203 6 px; not converted" in text
    )
    assert f"{root / 'masks' / 'c.png'}: unreadable mask" in text
    assert "FAILED: 1 of 3 masks written" in text
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["a.png"]
    assert (out / "images").is_dir() and not (out / "images").is_symlink()
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a.jpg", "b.png", "c.jpg"]

    (root / "masks" / "c.png").unlink()
    report = convert_folder(root, tmp_path / "out2", unknown_colors="ignore", images="none")
    assert report.ok and report.written == 2
    assert report.unknown_colors == {0x010203: [6, 1]}
    mask = np.array(Image.open(tmp_path / "out2" / "masks" / "b.png"))
    assert (mask.ravel()[:6] == 255).all()
    np.testing.assert_array_equal(mask.ravel()[6:], truth["b"].ravel()[6:])
    assert not (tmp_path / "out2" / "images").exists()


def test_convert_mask_suffix_camvid(tmp_path, capsys):
    root, truth = _coloured_folder(tmp_path)
    for p in (root / "masks").iterdir():
        p.rename(p.with_name(f"{p.stem}_L.png"))
    (root / "masks" / "stray.png").write_bytes(b"x")
    (root / "classes.txt").rename(tmp_path / "label_colors.txt")
    out = tmp_path / "out"
    code = main([
        "data", "convert", str(root), "--out", str(out), "--no-progress",
        "--classes", str(tmp_path / "label_colors.txt"), "--mask-suffix", "_L",
    ])
    text = capsys.readouterr().out
    assert code == 1 and "stray.png: name does not end in --mask-suffix '_L'" in text
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["a.png", "b.png", "c.png"]
    assert read_classes(out / "classes.txt").names == ["background", "road", "sidewalk", "building"]
    ds = FolderDataset(out)
    for i, stem in enumerate(ds.names):
        np.testing.assert_array_equal(ds[i]["mask"], truth[stem])


# -- image formats -------------------------------------------------------------------------------------


def test_image_extensions_from_pillow():
    exts = readable_image_extensions()
    assert exts[:4] == (".jpg", ".jpeg", ".png", ".bmp") and exts == IMAGE_EXTENSIONS
    for e in (".tif", ".tiff", ".webp", ".gif", ".ppm", ".tga"):
        assert e in exts
    for e in (".pdf", ".mpg", ".h5", ".grib", ".wmf"):  # write-only, videos, stubs
        assert e not in exts


def test_folder_reads_tif_webp_gif(tmp_path, capsys):
    root = tmp_path / "formats"
    truth = {}
    for k, (stem, ext) in enumerate({"t": ".tif", "u": ".TIFF", "w": ".webp", "g": ".gif"}.items()):
        image, mask, _ = make_scene(500 + k, num_classes=4)
        (root / "images").mkdir(parents=True, exist_ok=True)
        kwargs = {"lossless": True} if ext == ".webp" else {}
        Image.fromarray(image).save(root / "images" / f"{stem}{ext}", **kwargs)
        (root / "masks").mkdir(exist_ok=True)
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
        truth[stem] = (image, mask)
    (root / "images" / "notes.txt").write_text("not an image")  # ignored, not an image extension
    ds = FolderDataset(root)
    assert ds.names == ["g", "t", "u", "w"]
    for i, stem in enumerate(ds.names):
        s = ds[i]
        image, mask = truth[stem]
        assert s["image"].shape == image.shape and s["image"].dtype == np.uint8
        np.testing.assert_array_equal(s["mask"], mask)
        if stem != "g":  # GIF is quantised to 256 colours; TIFF and lossless WebP are exact
            np.testing.assert_array_equal(s["image"], image)
    code = main(["data", "check", str(root), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "OK: 4 of 4 items good" in out
    os.remove(root / "masks" / "w.png")
    code = main(["data", "check", str(root), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1 and "images/w.webp: image has no mask" in out
