"""`pixelwise data check` reports every broken file, through the real CLI entry point."""

from __future__ import annotations

from data_fixtures import FOLDER_CLASSES

from pixelwise.cli import main


def _run(capsys, *argv):
    code = main(["data", "check", *map(str, argv), "--no-progress"])
    out = capsys.readouterr()
    return code, out.out, out.err


def _problem_lines(out):
    return [ln for ln in out.splitlines() if ln.startswith("  /")]


def test_check_voc_reports_every_bad_file(make_voc, capsys):
    root = make_voc(broken=True)
    code, out, _ = _run(capsys, root.parent.parent)  # tmp dir holding VOCdevkit: layout detected
    assert code == 1
    probs = _problem_lines(out)
    assert len(probs) == 5, out
    joined = "\n".join(probs)
    assert "JPEGImages/2010_000005.jpg: unreadable image" in joined
    assert "SegmentationClass/2010_000006.png: mask is 32x22 but the image is 32x24" in joined
    assert "SegmentationClass/2010_000007.png: labels [30] outside 0..20 and 255" in joined
    assert "SegmentationClass/2010_000008.png: mask file not found" in joined
    assert "SegmentationObject/2010_000008.png: instance file not found" in joined
    assert "dataset: voc" in out and "split: all lists (train, trainval, val); 10 items" in out
    assert "FAILED: 6 of 10 items good, 5 problem(s)" in out
    assert "background" in out and "tvmonitor" in out and "ignore" in out


def test_check_voc_good_split_passes(make_voc, capsys):
    root = make_voc(broken=True)
    code, out, _ = _run(capsys, root, "--format", "voc", "--split", "train")
    assert code == 0, out
    assert "problems: none" in out and "OK: 3 of 3 items good" in out


def test_check_sbd(make_sbd, capsys):
    root = make_sbd(broken=True)
    code, out, _ = _run(capsys, root, "--format", "sbd")
    assert code == 1
    probs = "\n".join(_problem_lines(out))
    assert len(_problem_lines(out)) == 2, out
    assert "cls/2009_000999.mat: unreadable .mat file" in probs
    assert "cls/2009_000998.mat: no GTcls struct" in probs
    code, out, _ = _run(capsys, root, "--split", "train")
    assert code == 0 and "OK: 3 of 3 items good" in out


def test_check_folder(make_folder, capsys):
    root = make_folder(broken=True)
    code, out, _ = _run(capsys, root, "--format", "folder")
    assert code == 1
    probs = "\n".join(_problem_lines(out))
    assert len(_problem_lines(out)) == 5, out
    assert "images/no_mask.jpg: image has no mask" in probs
    assert "masks/no_image.png: mask has no image" in probs
    assert "images/trunc.jpg: unreadable image" in probs
    assert "masks/small_mask.png: mask is 29x24 but the image is 32x24" in probs
    assert "masks/bad_label.png: labels [9] outside 0..3 and 255" in probs
    for name in FOLDER_CLASSES:
        assert name in out
    # class table: pixels of each class in the good masks add up with the ignore row
    assert "  255  ignore" in out


def test_check_folder_num_classes_and_missing_root(make_folder, capsys, tmp_path):
    root = make_folder()
    code, out, _ = _run(capsys, root, "--num-classes", "2")
    assert code == 1 and "outside 0..1 and 255" in out
    code, _, err = _run(capsys, tmp_path / "nothing")
    assert (
        code == 2
        and "nothing: dataset root not found" in err
        and "\n" == err[-1]
        and err.count("\n") == 1
    )
