"""Measure one engine on one case, in this process or in a fresh one (for a clean peak RSS)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from typing import Iterator

import torch

from pixelwise.bench.cases import (
    PREPARED_ENGINES,
    TRAIN_ENGINES,
    Case,
    build_model,
    case_gflop,
    engine_precision,
    inference_callable,
    inference_step,
    int8_calibration,
    train_step,
)
from pixelwise.bench.memory import current_rss_mb, peak_rss_mb, reset_peak_rss
from pixelwise.bench.timing import summary_ms, time_interleaved
from pixelwise.runtime import cpu_supports_bf16

PEER = "torchfcn"  # pytorch-fcn on the same weights (pixelwise.bench.peer); a row like the engines'
ENGINES = ("reference", PEER, *PREPARED_ENGINES)
"""Rows ``pixelwise bench`` can measure: the plain reference, the peer and every engine of
:data:`pixelwise.optimize.ENGINES` but ``auto``."""
DEFAULT_ENGINES = ("reference", *(e for e in PREPARED_ENGINES if e != "plain"))
REQUIRED_KEYS = ("engine", "median_ms", "gflops", "peak_fraction", "ref_ratio", "peak_rss_mb")


def peer_applies(case: Case) -> bool:
    """Return True for the cases the torchfcn peer is compared on: paper-width FCN-8s inference."""
    return case.kind == "infer" and case.model == "fcn8s" and case.model_width == 1.0


def peer_skip_reason(case: Case) -> str | None:
    """Return why the torchfcn peer cannot run ``case`` (checked without the network first), or None."""
    if case.kind != "infer" or case.model != "fcn8s":
        return "torchfcn (the pytorch-fcn peer) is compared on FCN-8s inference only"
    if not peer_applies(case):
        return "torchfcn has VGG16's fixed channel counts: width 1.0 only"
    from pixelwise.bench.peer import torchfcn_unavailable

    why = torchfcn_unavailable()  # may fetch it once into the cache
    return f"torchfcn unavailable: {why}" if why else None


def with_peer(case: Case, engines: list[str] | tuple[str, ...]) -> list[str]:
    """Return ``engines`` with the torchfcn peer after ``reference`` when it applies to ``case``
    (:func:`peer_applies`), else ``engines`` unchanged (as a list)."""
    engines = list(engines)
    if PEER in engines or not peer_applies(case):
        return engines
    at = engines.index("reference") + 1 if "reference" in engines else 0
    return engines[:at] + [PEER] + engines[at:]


def skip_reason(case: Case, engine: str) -> str | None:
    """Return why ``engine`` cannot run ``case`` here, or None when it can."""
    if engine not in ENGINES:
        return f"unknown engine (valid: {', '.join(ENGINES)})"
    if engine == PEER:
        return peer_skip_reason(case)
    if engine == "cuda" and not torch.cuda.is_available():
        return "CUDA not available"
    if engine == "bf16" and not cpu_supports_bf16():
        return "CPU has no native bf16 (AVX512-BF16/AMX)"
    if case.kind == "train" and engine not in TRAIN_ENGINES:
        return f"{engine} is an inference engine"
    if engine in ("onnxruntime", "int8"):
        from pixelwise.fast.onnx import onnxruntime_available

        if not onnxruntime_available():
            return "onnxruntime not installed (pip install 'pixelwise[onnx]')"
    return None


def _compare(out, ref) -> dict:
    """Relative max error (to the largest |ref|) and argmax agreement of two score tensors."""
    if not (isinstance(out, torch.Tensor) and isinstance(ref, torch.Tensor)):
        return {}
    out, ref = out.detach().float().cpu(), ref.detach().float().cpu()
    scale = ref.abs().max().clamp_min(1e-12)
    dim = 1 if ref.dim() == 4 else 0
    return {
        "max_rel_err": float((out - ref).abs().max() / scale),
        "argmax_agree": float((out.argmax(dim) == ref.argmax(dim)).float().mean()),
    }


def _result_base(case: Case, engine: str, peaks: dict) -> dict:
    precision = engine_precision(engine)
    return {
        "case": case.label(),
        "kind": case.kind,
        "model": case.model,
        "size": f"{case.height}x{case.width}",
        "batch": case.batch,
        "width": case.model_width,
        "engine": engine,
        "precision": precision.replace("cuda_", ""),
        "median_ms": None,
        "min_ms": None,
        "gflop": None,
        "gflops": None,
        "peak_gflops": peaks.get(precision),
        "peak_fraction": None,
        "ref_ms": None,
        "ref_ratio": None,
        "peak_rss_mb": None,
        "threads": torch.get_num_threads(),
    }


def _build_step(case: Case, engine: str, threads: int | None, timing: dict | None = None):
    model = build_model(case)
    t0 = time.perf_counter()
    if case.kind == "train":
        step = train_step(case, model, engine)
    else:
        calibration = int8_calibration(case) if engine == "int8" else None
        step = inference_step(case, inference_callable(model, engine, threads=threads, calibration=calibration), engine)
    if timing is not None:  # engine set-up cost (folding, layout, ONNX export + session), no model build
        timing["prepare_s"] = time.perf_counter() - t0
    return step


def measure_engine(
    case: Case, engine: str, *, peaks: dict, with_ref: bool = True, threads: int | None = None, isolated: bool = False
) -> dict:
    """Return one result dict: time, GFLOP/s, peak fraction, ratio to the reference, peak RSS.

    Steps: build the model and the engine; reset the peak-RSS mark; run the warm-up calls (the
    peak RSS is read over these); then build the reference (same weights) and time the engine and
    the reference interleaved for ``case.repeats`` rounds (``repeats=0``: single shot, the first
    call of each is the measurement; for big cases). ``ref_ratio`` = reference time /
    engine time (> 1: faster than the plain reference).
    """
    result = _result_base(case, engine, peaks)
    reason = skip_reason(case, engine)
    if reason:
        result["skipped"] = reason
        return result
    result["gflop"] = case_gflop(case)
    step = _build_step(case, engine, threads, result)
    gc.collect()
    result["rss_before_mb"] = current_rss_mb()
    reset_ok = reset_peak_rss()
    if engine == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out, first = None, []
    for _ in range(max(1, case.warmup)):
        t0 = time.perf_counter()
        out = step()
        first.append(time.perf_counter() - t0)
    result["peak_rss_mb"] = peak_rss_mb()
    result["rss_method"] = ("subprocess" if isolated else "in-process") + (", VmHWM reset" if reset_ok else ", ru_maxrss")
    if engine == "cuda":
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    steps = {engine: step}
    if with_ref and case.ref and engine != "reference" and case.kind != "tiled":
        ref_step = _build_step(case, "reference", threads)
        gc.collect()
        t0 = time.perf_counter()
        ref_out = ref_step()  # doubles as the reference's warm-up
        ref_first = time.perf_counter() - t0
        if case.kind != "train":
            result.update(_compare(out, ref_out))
        steps["reference"] = ref_step
    del out
    if case.repeats > 0:
        times = time_interleaved(steps, warmup=0, repeats=case.repeats)
    else:  # single-shot cases (big, slow): the warm-up call is the measurement
        times = {engine: first[-1:]}
        if "reference" in steps:
            times["reference"] = [ref_first]
    result.update(summary_ms(times[engine]))
    result["repeats"] = case.repeats
    result["gflops"] = result["gflop"] / (result["median_ms"] / 1000)
    if result["peak_gflops"]:
        result["peak_fraction"] = result["gflops"] / result["peak_gflops"]
    if engine == "reference":
        result["ref_ms"], result["ref_ratio"] = result["median_ms"], 1.0
    elif "reference" in times:
        result["ref_ms"] = summary_ms(times["reference"])["median_ms"]
        result["ref_ratio"] = result["ref_ms"] / result["median_ms"]
    return result


def measure_isolated(case: Case, engine: str, *, peaks: dict, with_ref: bool = True, threads: int | None = None, timeout: float = 3600) -> dict:
    """Run :func:`measure_engine` in a fresh Python process (clean peak RSS); return its result."""
    spec = {"case": case.to_dict(), "engine": engine, "peaks": peaks, "with_ref": with_ref, "threads": threads}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pixelwise.bench.worker"],
            input=json.dumps(spec), capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {**_result_base(case, engine, peaks), "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**_result_base(case, engine, peaks), "error": f"worker failed: {tail}"}
    return json.loads(lines[-1])


def run_cases(
    plan: list[tuple[Case, list[str]]],
    *,
    peaks: dict,
    isolate: bool = False,
    with_ref: bool = True,
    threads: int | None = None,
    progress: bool = True,
) -> Iterator[dict]:
    """Yield one result per (case, engine) of ``plan``, with a tqdm bar on stderr."""
    from tqdm import tqdm

    tasks = [(case, engine) for case, engines in plan for engine in engines]
    bar = tqdm(tasks, desc="bench", unit="run", disable=not progress or None, file=sys.stderr)
    for case, engine in bar:
        bar.set_postfix_str(f"{case.label()} [{engine}]")
        if isolate and not skip_reason(case, engine):
            yield measure_isolated(case, engine, peaks=peaks, with_ref=with_ref, threads=threads)
        else:
            yield measure_engine(case, engine, peaks=peaks, with_ref=with_ref, threads=threads)
        gc.collect()
