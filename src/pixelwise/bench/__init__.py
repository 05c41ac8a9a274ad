"""Benchmarks: latency, throughput, achieved GFLOP/s, fraction of a conv peak measured in the same
run, ratio to a plain reference model timed side by side, and peak RSS, per engine.

Entry points: ``pixelwise bench`` (:mod:`pixelwise.cli.bench`), ``benchmarks/run.py`` (the full
suite), and :func:`run_benchmark` from Python.
"""

from __future__ import annotations

from pixelwise.bench.cases import KINDS, Case
from pixelwise.bench.machine import describe, machine_info
from pixelwise.bench.peak import measure_peaks
from pixelwise.bench.runner import DEFAULT_ENGINES, ENGINES, REQUIRED_KEYS, measure_engine, run_cases
from pixelwise.bench.suite import full_plan, quick_plan
from pixelwise.bench.targets import TARGETS, annotate

__all__ = [
    "Case", "DEFAULT_ENGINES", "ENGINES", "KINDS", "REQUIRED_KEYS", "TARGETS", "annotate", "describe",
    "full_plan", "machine_info", "measure_engine", "measure_peaks", "quick_plan", "run_benchmark", "run_cases",
]


def run_benchmark(
    plan: list[tuple[Case, list[str]]],
    *,
    isolate: bool = False,
    with_ref: bool = True,
    threads: int | None = None,
    quick_peaks: bool = False,
    progress: bool = True,
    on_result=None,
) -> tuple[dict, list[dict]]:
    """Measure the conv peaks, then every (case, engine) of ``plan``.

    Returns ``(header, results)``: ``header`` = machine info + peaks (+ ``peer_speedup`` when a
    torchfcn row was measured: :func:`pixelwise.bench.report.peer_speedups`); each result is a dict with
    at least :data:`REQUIRED_KEYS`, annotated with its target when one applies. ``on_result`` is
    called with each result as soon as it is ready (for streaming output).
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    from pixelwise.bench.report import peer_speedups

    header = {"machine": machine_info(), "peaks": measure_peaks(quick=quick_peaks)}
    results = []
    for r in run_cases(plan, peaks=header["peaks"], isolate=isolate, with_ref=with_ref, threads=threads, progress=progress):
        annotate(r)
        results.append(r)
        if on_result is not None:
            on_result(r)
    speedups = peer_speedups(results)  # pixelwise's default engines vs pytorch-fcn (torchfcn), same run
    if speedups:
        header["peer_speedup"] = speedups
    return header, results
