"""`pixelwise demo --quick`: the whole pipeline in seconds, deterministic per seed."""

import json

from pixelwise.cli import main


def test_quick_demo_writes_report_and_figures(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    for text in ("FCN-8s", "DeconvNet", "EDeconvNet", "mean IU", "predictions.png", "curves.png",
                 "Not paper-exact", "pixelwise demo --out demo-out --seed 0 --quick"):
        assert text in report, text
    for name in ("predictions.png", "curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for ckpt in ("fcn8s/last.pt", "deconvnet/deconvnet_objects/last.pt", "deconvnet/deconvnet_proposals/last.pt"):
        assert (out / ckpt).is_file()
    results = json.loads((out / "results.json").read_text())
    assert set(results["results"]) == {"FCN-8s", "DeconvNet", "EDeconvNet (mean)"}
    assert results["timings_s"]["total"] > 0
    err = capsys.readouterr().err
    assert "1/3 training FCN-8s" in err and "2/3 training DeconvNet" in err and "done in" in err

    # same seed, same numbers
    again = tmp_path / "again"
    assert main(["demo", "--quick", "--out", str(again), "--no-progress"]) == 0
    second = json.loads((again / "results.json").read_text())
    for name in results["results"]:
        assert second["results"][name]["confusion"] == results["results"][name]["confusion"]
