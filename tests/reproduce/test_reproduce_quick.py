import json

import pytest

from pixelwise.cli import main


def test_reproduce_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["reproduce", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "FCN Table 2" in printed and "Appendix A" in printed
    for name in ("fcn_table.md", "deconvnet_table.md", "size_table.md", "upper_bound.md", "cost.md",
                 "comparison.png", "report.md", "results.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    models = results["models"]
    for key in ("fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce", "deconvnet", "edeconvnet_mean",
                "edeconvnet_release", "edeconvnet_release+crf", "deconvnet+crf", "edeconvnet_mean+crf"):
        assert key in models, key
        assert 0.0 <= models[key]["mean_iu"] <= 1.0
        assert models[key]["size_buckets"] is not None
    assert set(results["upper_bound"]) == {"32", "16", "8"}
    bound = results["upper_bound"]
    assert bound["32"]["mean_iu"] <= bound["16"]["mean_iu"] <= bound["8"]["mean_iu"]
    table = (out / "fcn_table.md").read_text()
    for row in ("FCN-32s", "FCN-16s", "FCN-8s", "FCN-8s at-once"):
        assert f"| {row} |" in table
    # the staged FCNs were initialised from each other, every model from the pretrained backbone
    assert (out / "seed0" / "train" / "fcn16s" / "last.pt").is_file()
    assert results["backbone"].endswith("vgg16_bn.pth")
    cost = (out / "cost.md").read_text()
    for key in ("fcn32s", "fcn8s", "deconvnet", "edeconvnet_mean"):  # measured in a fresh process: never 0
        assert models[key]["peak_mb"] is not None and models[key]["peak_mb"] > 1, (key, models[key]["peak_mb"])
    assert "| FCN-16s |" in cost
    report = (out / "report.md").read_text()
    assert "## The papers' claims on this data" in report and "FCN-8s beats FCN-16s" in report
    claims = {c["claim"]: c for c in results["claims"]}
    assert set(claims["FCN-8s beats FCN-16s (mean IU)"]["margins"]) == {"0"}


def test_claims_are_checked_on_every_seed():
    from pixelwise.reproduce.report import claim_checks, claims_table

    def models(m32, m16, m8, atonce, small_dec, small_fcn):
        return {"fcn32s": {"mean_iu": m32}, "fcn16s": {"mean_iu": m16},
                "fcn8s": {"mean_iu": m8, "size_buckets": {"small": {"mean_iu": small_fcn, "acc": 0.03}}},
                "fcn8s_atonce": {"mean_iu": atonce},
                "deconvnet": {"mean_iu": 0.3, "size_buckets": {"small": {"mean_iu": small_dec, "acc": 0.06}}}}

    claims = claim_checks({0: models(0.30, 0.33, 0.34, 0.345, 0.20, 0.10), 1: models(0.30, 0.302, 0.36, 0.30, 0.05, 0.10)})
    by = {c["claim"]: c for c in claims}
    assert by["FCN-16s beats FCN-32s (mean IU)"]["verdict"] == "holds on 1 of 2 seeds"  # +3.0 and +0.2 points
    assert by["FCN-8s beats FCN-16s (mean IU)"]["verdict"] == "holds"
    assert by["FCN-8s staged is about as good as at-once (mean IU within 1 point)"]["holds"] == {"0": True, "1": False}
    assert by["DeconvNet on proposals beats FCN-8s on small objects (small-bucket IU)"]["margins"]["0"] == pytest.approx(10.0)
    assert by["DeconvNet on proposals finds more small-object pixels than FCN-8s (small-bucket accuracy)"]["verdict"] == "holds"
    assert not any("EDeconvNet" in c for c in by)  # not evaluated: not claimed either way
    table = claims_table(claims)
    assert "| seed 0 | seed 1 |" in table and "+3.0 | +0.2" in table


def _metrics_only(models: dict) -> dict:
    """The numbers that must not change between two runs with one seed (times and memory may)."""
    keep = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "per_class_iu", "size_buckets", "params")
    return {name: {k: v for k, v in m.items() if k in keep} for name, m in models.items()}


def test_reproduce_is_deterministic_per_seed(tmp_path):
    from pixelwise.reproduce.config import ReproduceConfig
    from pixelwise.reproduce.run import reproduce

    runs = []
    for name in ("a", "b"):
        cfg = ReproduceConfig.quick(out=str(tmp_path / name), crf=False, val_limit=2, grid_indices=[0], seeds=[0, 1])
        runs.append(reproduce(cfg, log=lambda message: None))
    # compared as JSON text: NaN (a class absent from both truth and prediction) equals itself there
    first, second = (json.dumps(_metrics_only(r["models"]), sort_keys=True) for r in runs)
    assert first == second
    assert json.dumps(runs[0]["upper_bound"], sort_keys=True) == json.dumps(runs[1]["upper_bound"], sort_keys=True)
    assert {"fcn8s", "deconvnet", "edeconvnet_mean"} <= set(json.loads(first))
    # each seed trains its own models: the second seed's numbers are its own, and stable too
    seed1 = [json.dumps(_metrics_only(r["by_seed"]["1"]["models"]), sort_keys=True) for r in runs]
    assert seed1[0] == seed1[1] and seed1[0] != first
    assert [c["claim"] for c in runs[0]["claims"]] == [c["claim"] for c in runs[1]["claims"]]
