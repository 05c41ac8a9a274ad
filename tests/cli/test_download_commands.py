"""`pixelwise data download`, `weights list|download`, `predict --model NAME` and `train --download`
against a loopback server: one line per failure, nothing downloaded twice."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from loopback import read_only, server  # noqa: F401  (fixtures)
from pixelwise.cli import main
from pixelwise.data.io import write_image

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "data"), str(TESTS / "weights")]
from download_fixtures import camvid_targz, serve, voc_tar  # noqa: E402
from test_weights_zoo import caffemodel_bytes, serve_weights  # noqa: E402


def _error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"pixelwise {command}: error: "), err
    return err


def test_data_download_then_nothing_to_do(server, monkeypatch, tmp_path, capsys):
    serve(server, monkeypatch, "voc2012", voc_tar(tmp_path / "src"))
    dest = tmp_path / "data"
    assert main(["data", "download", "voc", "--to", str(dest), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "voc2012: downloaded, checked and unpacked into" in out
    assert f"pixelwise data check {dest / 'VOCdevkit' / 'VOC2012'} --format voc" in out
    assert main(["data", "check", str(dest / "VOCdevkit" / "VOC2012"), "--no-progress"]) == 0
    assert main(["data", "download", "voc2012", "--to", str(dest)]) == 0
    assert "nothing to do" in capsys.readouterr().out and len(server.requests) == 1


def test_data_download_dead_links_are_one_line(server, monkeypatch, tmp_path, capsys):
    serve(server, monkeypatch, "voc2012", voc_tar(tmp_path / "src"))
    dest = tmp_path / "data"
    assert main(["data", "download", "voc2012", "--to", str(dest), "--url", server.url("missing.tar")]) == 2
    err = _error_line(capsys, "data")
    assert "HTTP 404" in err and server.url("missing.tar") in err and "VOCtrainval_11-May-2012.tar" in err
    assert "--from FILE" in err and "PIXELWISE_MIRROR" in err
    server.hang.add("slow.tar")
    start = time.perf_counter()
    assert main(["data", "download", "voc2012", "--to", str(dest), "--url", server.url("slow.tar"),
                 "--timeout", "0.3"]) == 2
    assert time.perf_counter() - start < 5
    assert "no answer within 0.3 s" in _error_line(capsys, "data")
    assert not dest.exists()  # nothing partial left behind


def test_data_download_read_only_target_is_one_line(server, monkeypatch, tmp_path, capsys, read_only):
    data, digest = camvid_targz(tmp_path / "src")
    serve(server, monkeypatch, "camvid", data, tree_sha256=digest)
    assert main(["data", "download", "camvid", "--to", str(read_only)]) == 2
    assert f"cannot write {read_only}" in _error_line(capsys, "data") and server.requests == []


def test_train_download_fetches_camvid_once(server, monkeypatch, tmp_path, capsys):
    data, digest = camvid_targz(tmp_path / "src")
    serve(server, monkeypatch, "camvid", data, tree_sha256=digest)
    args = ["train", "--dataset", "camvid", "--data-root", str(tmp_path / "data"), "--download", "--model", "fcn32s",
            "--width", "0.03125", "--no-pad100", "--steps", "1", "--batch-size", "1", "--crop-size", "8",
            "--val-split", "", "--no-progress", "--threads", "1", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    assert "camvid: downloaded, checked and unpacked" in capsys.readouterr().err
    assert (tmp_path / "run" / "last.pt").is_file()
    assert main(["train", "--dataset", "synthetic", "--download", "--out", str(tmp_path / "x")]) == 2
    assert "synthetic has nothing to download" in _error_line(capsys, "train")
    assert len(server.requests) == 1


def test_weights_list_download_and_predict(server, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PIXELWISE_CACHE", str(tmp_path / "cache"))  # nothing converted by other tests
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "voc-fcn8s" in out and "fcn8s-heavy-pascal.caffemodel" in out and "imagenet" in out
    serve_weights(server, monkeypatch, "voc-fcn8s", caffemodel_bytes())
    assert main(["weights", "download", "voc-fcn8s", "--no-progress"]) == 0
    assert "voc-fcn8s.pt (fcn8s, 21 classes)" in capsys.readouterr().out
    image = tmp_path / "img.png"
    write_image(image, np.random.default_rng(0).integers(0, 256, (40, 48, 3), np.uint8))
    assert main(["predict", str(image), "--model", "voc-fcn8s", "--out", str(tmp_path / "out"), "--engine", "eager"]) == 0
    assert (tmp_path / "out" / "img.png").is_file() and server.names() == ["fcn8s-heavy-pascal.caffemodel"]
    capsys.readouterr()
    assert main(["weights", "download", "voc-fcn16s", "--url", server.url("gone.caffemodel")]) == 2
    err = _error_line(capsys, "weights")
    assert "HTTP 404" in err and "fcn16s-heavy-pascal.caffemodel" in err and "--from FILE" in err


def test_reproduce_download_voc(server, monkeypatch, tmp_path, capsys):
    import pixelwise.reproduce.run as reproduce_run

    serve(server, monkeypatch, "voc2012", voc_tar(tmp_path / "src"))
    seen = {}

    def fake_reproduce(cfg, log):  # the training itself is tests/reproduce's
        seen["cfg"] = cfg
        (Path(cfg.out) / "report.md").write_text("report\n")

    monkeypatch.setattr(reproduce_run, "reproduce", fake_reproduce)
    out = tmp_path / "run"
    assert main(["reproduce", "--dataset", "voc", "--data-root", str(tmp_path / "data"), "--download", "--quick",
                 "--out", str(out)]) == 0
    assert "voc2012: downloaded" in capsys.readouterr().err
    assert seen["cfg"].data_options == {}  # not the built-in world's size/classes/length
    assert (tmp_path / "data" / "VOCdevkit" / "VOC2012" / "ImageSets").is_dir()
