"""`pixelwise demo --quick`: the whole pipeline in seconds, deterministic per seed."""

import json
import subprocess
import sys
from pathlib import Path

from pixelwise.cli import main

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def test_quick_demo_writes_report_and_figures(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    for text in ("FCN-8s", "DeconvNet", "EDeconvNet", "mean IU", "predictions.png", "curves.png",
                 "Not paper-exact", "pixelwise demo --out demo-out --seed 0 --quick"):
        assert text in report, text
    for name in ("predictions.png", "curves.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for ckpt in ("fcn32s/last.pt", "fcn16s/last.pt", "fcn8s/last.pt", "deconvnet_objects/last.pt", "deconvnet/last.pt"):
        assert (out / ckpt).is_file()
    results = json.loads((out / "results.json").read_text())
    shown = {"FCN-8s", "DeconvNet", "EDeconvNet (mean)"}
    assert set(results["results"]) == {"FCN-32s", "FCN-16s", *shown, *(f"{name} + CRF" for name in shown)}
    assert all("boundary_f1" in r for r in results["results"].values())
    recall = results["proposal_recall"]
    assert recall["objects"] > 0 and 0 <= recall["all"] <= 1 and recall["iou"] == 0.5
    claims = {c["claim"]: c for c in results["claims"]}
    assert "DeconvNet on proposals beats FCN-8s on boundaries (BF)" in claims
    assert "the dense CRF improves FCN-8s (mean IU)" in claims and list(claims[next(iter(claims))]["margins"]) == ["0"]
    for text in ("Proposal recall", "The papers' claims on this seed", "BF"):
        assert text in report, text
    assert results["timings_s"]["total"] > 0
    err = capsys.readouterr().err
    for phase in ("1/4 the backbone", "2/4 FCN-32s -> FCN-16s -> FCN-8s", "3/4 DeconvNet", "4/4 evaluating", "done in"):
        assert phase in err, phase
    assert "pretraining the backbone" in err
    assert "proposals" in report and "IU by object size" in report
    assert all(results["results"][name]["size_buckets"] for name in shown)

    # scripts/crf_variants.py (the CRF measurement the README cites) scores this demo's models
    done = subprocess.run([sys.executable, str(SCRIPTS / "crf_variants.py"), str(out), "--quick"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| fcn8s", "| deconvnet", "| edeconvnet"))]
    assert len(rows) == 15 and "without the smoothness kernel" in done.stdout

    # same seed, same numbers; the second run takes the backbone from the cache
    again = tmp_path / "again"
    assert main(["demo", "--quick", "--out", str(again), "--no-progress"]) == 0
    assert "pretrained backbone from the cache" in capsys.readouterr().err
    second = json.loads((again / "results.json").read_text())
    for name in results["results"]:
        assert second["results"][name]["confusion"] == results["results"][name]["confusion"]
