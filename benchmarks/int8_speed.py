"""int8 against the fp32 engines, side by side in one process: interleaved rounds, peaks included.

    .venv/bin/python benchmarks/int8_speed.py                          # FCN-8s 500x500, DeconvNet 50 proposals
    .venv/bin/python benchmarks/int8_speed.py --rounds 3 --parts --torch-int8 --output benchmarks/results/int8_speed.json

Cases (paper width, random weights as in ``pixelwise bench``: speed does not depend on the values):

- ``fcn8s``: one 500x500 image; engines ``channels_last``, ``onnxruntime`` (the fastest fp32 ones)
  and ``int8``; the goal: int8 >= 3x the fastest fp32 engine.
- ``deconvnet``: a 375x500 image with 50 proposals through the proposal pipeline (crops, batches
  of 8, aggregation); engines ``channels_last`` (the default) and ``int8``; the goal: >= 2x.

Each round measures, in an order that reverses every round, the 3x3 conv peaks (fp32: the best
of PyTorch's layouts, :func:`pixelwise.bench.peak.conv_gflops`; int8: four such convs quantized as
the engine does, :func:`pixelwise.bench.peak.int8_conv_gflops`) and one call of every engine of
every case; the medians over the rounds are reported with the share of each precision's peak.
``--parts`` adds int8 variants: everything quantized, and the default (class scorers in float) with
the encoder or DeconvNet's decoder in float too (what quantizing each part gains in time); ``--torch-int8`` adds PyTorch's own int8 path for FCN-8s (FX graph mode, x86
backend, on the backbone: the FCN head's size-dependent crops do not trace) to compare the two
int8 paths. The int8 engines are calibrated on 2 random inputs of the network's input size.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from pixelwise.bench.cases import Case, build_model, case_gflop, inference_callable, inference_step, int8_calibration
from pixelwise.bench.peak import conv_gflops, int8_conv_gflops
from pixelwise.fast.int8 import QuantSettings
from pixelwise.optimize import prepare_for_inference

GOALS = {"fcn8s": 3.0, "deconvnet": 2.0}
"""int8's speed-up over the fastest fp32 engine that the issue asks for, per case."""


def torch_fx_int8(model: torch.nn.Module, calibration) -> Callable:
    """PyTorch's own int8 path on ``model`` (an FCN): the backbone quantized by FX graph mode (x86
    backend, its default per-channel qconfig), calibrated on ``calibration``; the head in float."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from pixelwise.fast.fold import fold_batchnorm

    torch.backends.quantized.engine = "x86"
    model = copy.deepcopy(model).eval()
    fold_batchnorm(model)
    example = torch.from_numpy(calibration.inputs[0])
    model.backbone = prepare_fx(model.backbone, get_default_qconfig_mapping("x86"), (example,))
    with torch.no_grad():
        for array in calibration.inputs:
            model(torch.from_numpy(array))
    model.backbone = convert_fx(model.backbone)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    return run


def engines_of(case: Case, parts: bool, torch_int8: bool) -> dict[str, Callable[[], torch.Tensor]]:
    """``{name: zero-argument step}`` of every engine measured on ``case`` (set-up timed and printed)."""
    names = ["channels_last", "onnxruntime", "int8"] if case.model == "fcn8s" else ["channels_last", "int8"]
    variants = {"int8": QuantSettings()}  # the class scorers in float
    if parts:
        default = QuantSettings().float_parts
        float_parts = [(), (*default, "encoder")] + ([(*default, "decoder")] if case.model == "deconvnet" else [])
        variants.update({f"int8 (float: {'+'.join(p) or 'none'})": QuantSettings(float_parts=p) for p in float_parts})
    steps = {}
    for name in names[:-1] + list(variants):
        start = time.perf_counter()
        model = build_model(case)
        if name in variants:
            engine = prepare_for_inference(model, engine="int8", copy=False, calibration=int8_calibration(case),
                                           quant=variants[name])
        else:
            engine = inference_callable(model, name)
        steps[name] = inference_step(case, engine, name)
        print(f"  {case.model}: {name} ready in {time.perf_counter() - start:.1f} s", flush=True)
    if torch_int8 and case.model == "fcn8s":
        steps["torch int8 (FX)"] = inference_step(case, torch_fx_int8(build_model(case), int8_calibration(case)), "")
    return steps


def compare(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Label agreement and relative error of scores ``a`` against ``b`` (random weights: shown, not judged)."""
    a, b = a.float(), b.float()
    dim = 1 if b.dim() == 4 else 0
    return {"agreement": float((a.argmax(dim) == b.argmax(dim)).float().mean()),
            "max_rel_err": float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))}


def measure(cases: list[Case], steps: dict[str, dict], rounds: int) -> dict:
    """Warm every engine up (one call), then ``rounds`` interleaved rounds of the peaks and every
    engine; return the times (s) and GFLOP/s per name."""
    names = [("peak", "fp32"), ("peak", "int8")] + [(c.model, e) for c in cases for e in steps[c.model]]
    outputs = {(c.model, e): step() for c in cases for e, step in steps[c.model].items()}  # warm-up
    times: dict[tuple[str, str], list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            if name == ("peak", "fp32"):
                times[name].append(conv_gflops(torch.float32))
            elif name == ("peak", "int8"):
                times[name].append(int8_conv_gflops())
            else:
                start = time.perf_counter()
                steps[name[0]][name[1]]()
                times[name].append(time.perf_counter() - start)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{m} {e} {times[(m, e)][-1]:.3g}" for m, e in names), flush=True)
    return {"times": times, "outputs": outputs}


def summarise(cases: list[Case], measured: dict) -> dict:
    """Medians, GFLOP/s, share of each precision's peak, speed-ups over the fastest fp32 engine."""
    times = measured["times"]
    peaks = {p: statistics.median(times[("peak", p)]) for p in ("fp32", "int8")}
    out: dict = {"peaks_gflops": peaks, "peak_rounds": {p: times[("peak", p)] for p in peaks}, "cases": {}}
    for case in cases:
        gflop = case_gflop(case)
        rows = {e: statistics.median(t) for (m, e), t in times.items() if m == case.model}
        fp32 = min(v for e, v in rows.items() if "int8" not in e)
        ref = measured["outputs"][(case.model, "channels_last")]
        out["cases"][case.model] = {"label": case.label(), "gflop": gflop, "goal": GOALS[case.model], "engines": {
            e: {"median_s": v, "rounds_s": times[(case.model, e)], "gflops": gflop / v,
                "peak_fraction": gflop / v / peaks["int8" if "int8" in e else "fp32"],
                "speedup_vs_fastest_fp32": fp32 / v, **compare(measured["outputs"][(case.model, e)], ref)}
            for e, v in rows.items()}}
    return out


def report(summary: dict, info: dict) -> None:
    """Print the result lines."""
    peaks = summary["peaks_gflops"]
    print(f"{info['cpu']}, {info['threads']} threads, torch {info['torch']}, onnxruntime {info['onnxruntime']}; "
          f"{info['rounds']} interleaved rounds")
    print(f"3x3 conv peaks (same run, medians): fp32 {peaks['fp32']:.0f} GFLOP/s, int8 {peaks['int8']:.0f} GFLOP/s "
          f"(x{peaks['int8'] / peaks['fp32']:.2f})")
    for model, case in summary["cases"].items():
        print(f"{case['label']} ({case['gflop']:.0f} GFLOP)")
        for name, e in case["engines"].items():
            precision = "int8" if "int8" in name else "fp32"
            print(f"  {name:<24} {1000 * e['median_s']:8.0f} ms  {e['gflops']:6.0f} GFLOP/s  "
                  f"{100 * e['peak_fraction']:4.0f} % of the {precision} peak  x{e['speedup_vs_fastest_fp32']:.2f} "
                  f"the fastest fp32  (labels vs channels_last {100 * e['agreement']:.2f} %)")
        x = case["engines"]["int8"]["speedup_vs_fastest_fp32"]
        print(f"  goal int8 >= x{case['goal']:g} the fastest fp32 engine: {'met' if x >= case['goal'] else 'missed'} "
              f"(x{x:.2f})")


def main(argv: list[str] | None = None) -> int:
    """Set up, run the rounds, print (and with ``--output`` write JSON); return 0."""
    import onnxruntime

    from pixelwise.runtime import cpu_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--cases", default="fcn8s,deconvnet", help="fcn8s, deconvnet or both (default)")
    p.add_argument("--proposals", type=int, default=50, help="DeconvNet's proposals (default 50)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1.0: the papers')")
    p.add_argument("--parts", action="store_true", help="also int8 with each part of the network in float")
    p.add_argument("--torch-int8", action="store_true", help="also PyTorch's own int8 (FX) for FCN-8s")
    p.add_argument("--output", type=Path, default=None, help="write the result as JSON here")
    args = p.parse_args(argv)
    chosen = args.cases.split(",")
    if args.rounds < 1 or not set(chosen) <= set(GOALS):
        p.error(f"--rounds must be >= 1 and --cases among {', '.join(GOALS)}")
    all_cases = {"fcn8s": Case("infer", "fcn8s", 500, 500, model_width=args.width),
                 "deconvnet": Case("proposals", "deconvnet", 375, 500, batch=args.proposals, model_width=args.width)}
    cases = [all_cases[c] for c in chosen]
    steps = {c.model: engines_of(c, args.parts, args.torch_int8) for c in cases}
    summary = summarise(cases, measure(cases, steps, args.rounds))
    info = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "rounds": args.rounds, "width": args.width}
    report(summary, info)
    if args.output:
        args.output.write_text(json.dumps({"info": info, **summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
