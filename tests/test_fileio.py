"""pixelwise.fileio: output paths that cannot be written end as one WriteError line naming them."""

import os
import sys
from pathlib import Path

import pytest

from pixelwise.errors import PixelwiseError
from pixelwise.fileio import WriteError, atomic_file, ensure_writable_dir, ensure_writable_file, writing

# a folder in which even root cannot create files (Linux procfs); skipped elsewhere
PROC = Path("/proc")
needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux") or not PROC.is_dir(), reason="needs Linux /proc")


def test_write_error_is_a_one_line_pixelwise_error(tmp_path):
    err = WriteError(tmp_path / "x.onnx", "Permission denied")
    assert isinstance(err, PixelwiseError)
    assert str(err) == f"cannot write {tmp_path / 'x.onnx'}: Permission denied" and "\n" not in str(err)


def test_ensure_writable_dir_creates_parents_and_leaves_no_probe(tmp_path):
    folder = ensure_writable_dir(tmp_path / "a" / "b")
    assert folder == tmp_path / "a" / "b" and folder.is_dir()
    assert list(folder.iterdir()) == []  # the write test's file is gone
    assert ensure_writable_dir(folder) == folder  # an existing folder is fine


def test_ensure_writable_file_accepts_new_and_existing_files(tmp_path):
    target = tmp_path / "new" / "x.pt"
    assert ensure_writable_file(target) == target and target.parent.is_dir() and not target.exists()
    target.write_text("keep")
    assert ensure_writable_file(target) == target and target.read_text() == "keep"


@pytest.mark.parametrize(
    "make, target, reason",
    [
        (Path.mkdir, "out", "it is a directory"),
        (Path.touch, "out/x.onnx", "{out} is not a directory"),
        (Path.touch, "out/a/b/x.onnx", "{out} is not a directory"),
    ],
)
def test_ensure_writable_file_errors(tmp_path, make, target, reason):
    make(tmp_path / "out")
    with pytest.raises(WriteError) as info:
        ensure_writable_file(tmp_path / target)
    assert str(info.value) == f"cannot write {tmp_path / target}: {reason.format(out=tmp_path / 'out')}"


def test_ensure_writable_dir_refuses_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(WriteError, match="notes.txt: it is not a directory"):
        ensure_writable_dir(tmp_path / "notes.txt")
    with pytest.raises(WriteError, match=r"notes.txt/masks: .*notes.txt is not a directory"):
        ensure_writable_dir(tmp_path / "notes.txt" / "masks")


@needs_proc
def test_unwritable_system_folder():
    with pytest.raises(WriteError, match=r"^cannot write /proc/pixelwise-test\.onnx: "):
        ensure_writable_file(PROC / "pixelwise-test.onnx")
    with pytest.raises(WriteError, match=r"^cannot write /proc/pixelwise-test: "):
        ensure_writable_dir(PROC / "pixelwise-test")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(WriteError, match="Permission denied"):
            ensure_writable_file(ro / "x.pt")
        with pytest.raises(WriteError, match="Permission denied"):
            ensure_writable_dir(ro / "sub")
    finally:
        ro.chmod(0o755)


def test_atomic_file_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_text("old")
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(ValueError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise ValueError("boom")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_atomic_file_turns_write_failures_into_one_line(tmp_path):
    with pytest.raises(WriteError, match="it is a directory"):
        with atomic_file(tmp_path):
            pass
    # an OSError about the temporary file, or naming none (a full disk), names the target
    with pytest.raises(WriteError, match=r"ckpt\.pt: No space left on device$"):
        with atomic_file(tmp_path / "ckpt.pt"):
            raise OSError(28, "No space left on device")
    # one about another file (a source read in the block) is not a write error
    with pytest.raises(FileNotFoundError):
        with atomic_file(tmp_path / "ckpt.pt"):
            open(tmp_path / "missing-source.pt", "rb")
    assert list(tmp_path.iterdir()) == []


def test_writing_names_the_file_the_error_is_about(tmp_path):
    with pytest.raises(WriteError, match=r"x\.json: No space left on device$"):
        with writing(tmp_path / "x.json"):
            raise OSError(28, "No space left on device")
    with pytest.raises(WriteError, match=r"sub[/\\]y\.png: No such file or directory"):
        with writing(tmp_path / "x.json"):
            open(tmp_path / "sub" / "y.png", "wb")
    with writing(tmp_path / "ok.txt") as path:
        path.write_text("fine")
    assert (tmp_path / "ok.txt").read_text() == "fine"
