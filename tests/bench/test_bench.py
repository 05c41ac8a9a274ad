"""The benchmark: reference models, timing, memory, targets and ``pixelwise bench`` output."""

import json

import pytest
import torch

import pixelwise
from pixelwise.bench import REQUIRED_KEYS, Case, full_plan
from pixelwise.bench.cases import case_gflop, randomise
from pixelwise.bench.memory import current_rss_mb, peak_rss_mb, reset_peak_rss
from pixelwise.bench.reference import build_reference
from pixelwise.bench.report import console_table, markdown_table
from pixelwise.bench.targets import annotate, metric_value
from pixelwise.bench.timing import time_interleaved
from pixelwise.cli import main
from pixelwise.models.flops import count_flops


@pytest.mark.parametrize("name", pixelwise.list_models())
def test_reference_computes_the_same_function(name):
    torch.manual_seed(0)
    model = randomise(pixelwise.create_model(name, num_classes=4, width=0.0625), 0).eval()
    ref = build_reference(model)
    sizes = [(224, 224)] if "deconv" in name else [(64, 64), (37, 50)]
    for h, w in sizes:
        x = torch.randn(1, 3, h, w) * 60
        with torch.no_grad():
            a, b = model(x), ref(x)
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=0, atol=1e-5 * float(a.abs().max()))


def test_time_interleaved_alternates_order():
    calls = []
    steps = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = time_interleaved(steps, warmup=1, repeats=3)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert len(times["a"]) == 3 and all(t >= 0 for t in times["b"])


def test_peak_rss_sees_an_allocation():
    if not reset_peak_rss():
        pytest.skip("peak-RSS reset needs Linux /proc/self/clear_refs")
    before = current_rss_mb()
    block = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
    del block
    assert peak_rss_mb() >= before + 50


def test_case_gflop_uses_count_flops():
    case = Case("infer", "fcn8s", 64, 80, batch=2, model_width=0.0625, num_classes=4)
    model = pixelwise.create_model("fcn8s", num_classes=4, width=0.0625).eval()
    assert case_gflop(case) == pytest.approx(count_flops(model, 64, 80, batch=2) / 1e9)
    train = Case("train", "fcn8s", 64, 80, batch=2, model_width=0.0625, num_classes=4)
    assert 1.8 * case_gflop(case) < case_gflop(train) < 3.2 * case_gflop(case)  # + backward


def test_targets_annotate_paper_size_results():
    base = {"engine": "channels_last", "width": 1.0, "kind": "infer", "model": "fcn8s", "size": "500x500",
            "batch": 1, "precision": "fp32", "peak_fraction": 0.6, "median_ms": 1000, "gflop": 363, "peak_gflops": 400}
    r = annotate(dict(base))
    assert r["target_met"] is False and r["target_gap"] == pytest.approx(1.5)
    p = {"engine": "bf16", "width": 1.0, "kind": "proposals", "model": "deconvnet", "batch": 50,
         "precision": "fp32", "median_ms": 10000, "gflop": 3275, "peak_gflops": 400}
    assert metric_value(p, "limit_ratio") == pytest.approx(10 / (3275 / 400))
    tiny = dict(base, width=0.0625)
    assert "target" not in annotate(tiny)


def test_full_plan_covers_the_paper_sizes():
    labels = {(c.kind, c.model, c.height, c.width, c.batch) for c, _ in full_plan()}
    for name in ("fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce"):
        assert ("infer", name, 500, 500, 1) in labels
    for k in (1, 8, 50):
        assert ("proposals", "deconvnet", 375, 500, k) in labels
    assert ("train", "fcn8s", 320, 320, 1) in labels
    assert ("tiled", "fcn8s", 2048, 2048, 1) in labels


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: one thread avoids OpenMP barrier spinning on the busy shared cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_cli_quick_json(capsys):
    assert main(["bench", "--quick", "--json", "--size", "32", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = _json_lines(out)
    engines = [r["engine"] for r in rows]
    assert engines == ["reference", "eager", "channels_last", "bf16", "onnxruntime", "int8", "cuda"]
    for r in rows:
        assert all(k in r for k in REQUIRED_KEYS)
        if r.get("skipped"):
            assert r["median_ms"] is None
            continue
        assert r["median_ms"] > 0 and r["gflops"] > 0 and r["peak_fraction"] > 0
        assert r["ref_ratio"] > 0 and r["peak_rss_mb"] > 100
        assert r["gflops"] == pytest.approx(r["gflop"] / (r["median_ms"] / 1000))
        if r["engine"] != "reference":
            tol = {"bf16": 5e-2, "int8": 0.2}.get(r["precision"], 1e-4)  # int8: random weights and inputs
            assert r["max_rel_err"] <= tol
    cuda = rows[-1]
    assert bool(cuda.get("skipped")) == (not torch.cuda.is_available())


def test_cli_proposals(capsys):
    args = ["bench", "--quick", "--json", "--model", "deconvnet", "--proposals", "3", "--size", "150x200",
            "--engines", "channels_last", "--repeats", "1", "--width", "0.03125", "--threads", "1"]
    assert main(args) == 0
    (row,) = _json_lines(capsys.readouterr().out)
    assert row["kind"] == "proposals" and row["batch"] == 3 and row["size"] == "150x200"
    assert row["max_rel_err"] < 1e-4 and row["ref_ratio"] > 0
    deconv = pixelwise.create_model("deconvnet", num_classes=21, width=0.03125).eval()
    assert row["gflop"] == pytest.approx(count_flops(deconv, 224, 224, batch=3) / 1e9)  # network on 3 crops


def test_cli_train_isolated(capsys):
    args = ["bench", "--quick", "--json", "--train", "--engines", "eager", "--size", "32", "--train-size", "32",
            "--repeats", "1", "--isolate", "--threads", "1"]
    assert main(args) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["infer", "train"]
    assert all(r["rss_method"].startswith("subprocess") for r in rows)
    assert rows[1]["gflop"] > 2 * rows[0]["gflop"] and rows[1]["ref_ratio"] > 0


def test_cli_table_and_errors(capsys):
    assert main(["bench", "--quick", "--size", "32", "--engines", "reference,cuda", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "3x3 conv peak (same run)" in out and "infer fcn8s 32x32 x1" in out
    assert main(["bench", "--proposals", "1,8", "--model", "fcn8s"]) == 2
    assert "--proposals needs deconvnet" in capsys.readouterr().err
    assert main(["bench", "--engines", "turbo"]) == 2
    assert "unknown engine(s) turbo" in capsys.readouterr().err
    assert main(["bench", "--model", "deconvnet", "--size", "100"]) == 2


def test_report_tables():
    rows = [{"case": "infer fcn8s 500x500 x1", "engine": "eager", "median_ms": 1500.0, "gflops": 242.0,
             "peak_fraction": 0.55, "precision": "fp32", "ref_ratio": 1.4, "peak_rss_mb": 1300.0,
             "max_rel_err": 1e-7, "argmax_agree": 0.99995, "target_met": False, "target_gap": 1.6},
            {"case": "infer fcn8s 500x500 x1", "engine": "cuda", "skipped": "CUDA not available"}]
    md = markdown_table(rows)
    assert "| infer fcn8s 500x500 x1 | eager | 1500 | 242 | 55 (fp32) | 1.40 | 1300 | 1.0e-07 | 100.00 | missed x1.60 |" in md
    assert "skipped: CUDA not available" in console_table(rows)
