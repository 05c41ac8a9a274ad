"""Whole-process comparison: ``pixelwise predict`` against a pytorch-fcn script on a folder of images.

    .venv/bin/python benchmarks/predict_vs_peer.py                    # 10 images 500x500, 3 rounds
    .venv/bin/python benchmarks/predict_vs_peer.py --rounds 5 --output predict_vs_peer.json

Set-up (in ``--folder``, or a temporary folder removed afterwards): a random full-width FCN-8s
saved as a pixelwise checkpoint (``fcn8s.pt``), the same weights as a torchfcn ``FCN8s`` state dict
(``fcn8s_torchfcn.pth``), and ``--images`` random ``--size`` images (JPEG and PNG, fixed seed).

Three commands, each a whole process (start-up, imports, loading, every image, writing):

- ``pixelwise``: ``pixelwise predict --checkpoint fcn8s.pt --device cpu IMAGES --out DIR`` with a private
  ``PIXELWISE_CACHE`` (the user's cache is untouched). Writes per image ``NAME.png`` (palette label
  mask), ``NAME_overlay.png`` and ``NAME.json``: what a user gets by default (there is no flag to
  drop the overlay and the JSON, so pixelwise does more writing than the peer). Its warm-up run
  stores the ONNX Runtime engine in the engine cache; the timed runs are second runs.
- ``torchfcn``: ``benchmarks/peer_torchfcn_predict.py``: load the .pth, per image PIL read, Caffe
  preprocessing, forward under no_grad, argmax, ``NAME.png`` palette label mask.
- ``pixelwise-cache-off``: ``pixelwise predict`` with ``PIXELWISE_ENGINE_CACHE=0``: the default
  without an engine cache (``channels_last``, as on a first run).
- ``pixelwise-int8`` (``--int8``): ``pixelwise predict --engine int8``, after a one-time
  ``pixelwise export --int8`` of the checkpoint (not timed; calibrated on 4 and checked on 2 other
  random images of the same kind, ``--min-agreement 0``: the weights are random, so the guard's
  verdict means nothing here). Issue 27's goal: >= 2.5x faster than the script.

Each runs once as a warm-up, then ``--rounds`` interleaved rounds (the order reverses every
round). Prints the median wall seconds, the ratio torchfcn / pixelwise (the issue's goal: >= 1.3)
from the medians and within each round (adjacent runs: robust when the load changes between rounds),
peak RSS, the CPU model and the threads, and whether the two label masks agree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "peer_torchfcn_predict.py"
GOAL = 1.3  # issue 15: pixelwise predict >= 1.3x faster than the pytorch-fcn script
GOAL_INT8 = 2.5  # issue 27: pixelwise predict --engine int8 >= 2.5x faster than the script


# ----------------------------------------------------------------------------- set-up
def write_images(folder: Path, count: int = 10, size: int = 500, seed: int = 0) -> list[Path]:
    """Write ``count`` random ``size x size`` RGB images (smooth colour fields plus noise; JPEG for
    even indices, PNG for odd ones) into ``folder``; return their paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((size, size), Image.BILINEAR)
        noisy = np.asarray(coarse, dtype=np.int16) + rng.integers(-20, 21, (size, size, 3), dtype=np.int16)
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        path = folder / f"image_{i:02d}.{'jpg' if i % 2 == 0 else 'png'}"
        if path.suffix == ".jpg":
            image.save(path, quality=90)
        else:
            image.save(path)
        paths.append(path)
    return paths


def write_weights(folder: Path, width: float = 1.0, seed: int = 0) -> tuple[Path, Path]:
    """Write a random FCN-8s (21 classes) as a pixelwise checkpoint ``fcn8s.pt`` and its tensors
    under torchfcn's names as ``fcn8s_torchfcn.pth`` (loadable by torchfcn's ``FCN8s`` at width 1.0);
    return both paths."""
    import torch

    from pixelwise.bench.cases import Case, build_model
    from pixelwise.bench.peer import torchfcn_state_dict
    from pixelwise.checkpoint import make_checkpoint, save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    model = build_model(Case("infer", "fcn8s", 500, 500, model_width=width, seed=seed))  # random score layers
    ckpt = save_checkpoint(folder / "fcn8s.pt", make_checkpoint(model))
    pth = folder / "fcn8s_torchfcn.pth"
    torch.save({k: v.contiguous() for k, v in torchfcn_state_dict(model).items()}, pth)
    return ckpt, pth


# ----------------------------------------------------------------------------- the commands
def pixelwise_command() -> list[str]:
    """Return how a user starts pixelwise: the ``pixelwise`` script next to this Python, else ``-m``."""
    script = Path(sys.executable).with_name("pixelwise")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pixelwise"]


def commands(folder: Path, images: Path, ckpt: Path, pth: Path, torchfcn_path: Path | None,
             threads: int | None, int8: bool = False) -> dict[str, tuple[list[str], dict]]:
    """Return ``{name: (argv, env)}`` of the compared commands (see the module docstring)."""
    env = dict(os.environ, PIXELWISE_CACHE=str(folder / "cache"))
    env.pop("PIXELWISE_ENGINE_CACHE", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # both torch and pixelwise's ONNX Runtime follow torch's count
    # --device cpu: the peer script runs on the CPU (auto, the default, is the CPU where there is no GPU)
    predict = pixelwise_command() + ["predict", "--checkpoint", str(ckpt), "--device", "cpu", str(images), "--out"]
    peer = [sys.executable, str(PEER_SCRIPT), str(images), "--weights", str(pth), "--out", str(folder / "out" / "torchfcn")]
    if torchfcn_path is not None:
        peer += ["--torchfcn-path", str(torchfcn_path)]
    cmds = {
        "pixelwise": (predict + [str(folder / "out" / "pixelwise")], env),
        "torchfcn": (peer, env),
        "pixelwise-cache-off": (predict + [str(folder / "out" / "pixelwise-cache-off")],
                                dict(env, PIXELWISE_ENGINE_CACHE="0")),
    }
    if int8:
        cmds["pixelwise-int8"] = (predict + [str(folder / "out" / "pixelwise-int8"), "--engine", "int8"], env)
    return cmds


def export_int8(folder: Path, ckpt: Path, size: int, env: dict) -> float:
    """Build the checkpoint's int8 engine once (``pixelwise export --int8``, calibrated and checked
    on random images of its own); return the seconds it took."""
    calib, check = folder / "calibrate", folder / "check"
    write_images(calib, 4, size, seed=1)
    write_images(check, 2, size, seed=2)
    argv = pixelwise_command() + ["export", "--int8", "--checkpoint", str(ckpt), "-o", str(folder / "fcn8s-int8.onnx"),
                                  "--calibrate", str(calib), "--check", str(check), "--min-agreement", "0", "--quiet"]
    seconds, _ = run_once(argv, env, folder / "export-int8.log")
    return seconds


def run_once(argv: list[str], env: dict, log: Path) -> tuple[float, float | None]:
    """Run one whole process; return ``(wall seconds, peak RSS MB or None)``; exit on failure."""
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        if hasattr(os, "wait4"):  # the child's own rusage: its peak RSS
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
            proc.returncode, rss = os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024
        else:
            proc.wait()
            seconds, rss = time.perf_counter() - start, None
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        sys.exit(f"{' '.join(argv[:3])} ... failed (exit {proc.returncode}):\n" + "\n".join(tail))
    return seconds, rss


def label_agreement(a: Path, b: Path) -> tuple[float, float]:
    """Return (overall, worst image) fraction of pixels whose label is the same in the ``NAME.png``
    masks of folders ``a`` and ``b`` (pixelwise's ``*_overlay.png`` are skipped)."""
    from PIL import Image

    same = total = 0
    worst = 1.0
    for pa in sorted(p for p in a.glob("*.png") if not p.stem.endswith("_overlay")):
        la, lb = np.asarray(Image.open(pa)), np.asarray(Image.open(b / pa.name))
        equal = int((la == lb).sum())
        same, total, worst = same + equal, total + la.size, min(worst, equal / la.size)
    return (same / total if total else float("nan")), worst


# ----------------------------------------------------------------------------- the measurement
def measure(cmds: dict[str, tuple[list[str], dict]], rounds: int, logs: Path) -> dict[str, dict]:
    """Warm each command up once, then time ``rounds`` interleaved rounds; return per command
    ``{"warmup_s", "seconds": [...], "rss_mb": [...]}``."""
    logs.mkdir(parents=True, exist_ok=True)
    names = list(cmds)
    res = {name: {"warmup_s": None, "seconds": [], "rss_mb": []} for name in names}
    for name in names:  # pixelwise's first run stores the ONNX Runtime engine: the timed runs are second runs
        res[name]["warmup_s"], _ = run_once(*cmds[name], logs / f"{name}-warmup.log")
    print("warm-up: " + ", ".join(f"{n} {res[n]['warmup_s']:.1f} s" for n in names), flush=True)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            seconds, rss = run_once(*cmds[name], logs / f"{name}-{r}.log")
            res[name]["seconds"].append(seconds)
            res[name]["rss_mb"].append(rss)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {res[n]['seconds'][-1]:.1f} s" for n in order), flush=True)
    return res


def summarise(res: dict[str, dict]) -> dict:
    """Return medians, ranges and the ratios torchfcn / pixelwise and torchfcn / cache-off."""
    out = {}
    for name, r in res.items():
        rss = [v for v in r["rss_mb"] if v is not None]
        out[name] = {"median_s": statistics.median(r["seconds"]) if r["seconds"] else None,
                     "min_s": min(r["seconds"], default=None), "max_s": max(r["seconds"], default=None),
                     "peak_rss_mb": statistics.median(rss) if rss else None, **r}
    peer = out["torchfcn"]["median_s"]
    for name in (n for n in res if n != "torchfcn"):
        own = out[name]["median_s"]
        out[name]["speedup_vs_torchfcn"] = peer / own if peer and own else None
        # the ratio inside each round (adjacent runs), whose median is robust to load that changes between rounds
        per_round = [t / o for t, o in zip(res["torchfcn"]["seconds"], res[name]["seconds"])]
        out[name]["round_speedups"] = per_round
        out[name]["median_round_speedup"] = statistics.median(per_round) if per_round else None
    return out


def report(summary: dict, info: dict) -> None:
    """Print the result lines."""
    print(f"{info['images']} images {info['size']}x{info['size']}, {info['rounds']} rounds; {info['cpu']}, "
          f"{info['threads']} threads; torch {info['torch']}")
    for name, s in summary.items():
        if s["median_s"] is None:
            continue
        line = f"  {name:<20} median {s['median_s']:6.1f} s (range {s['min_s']:.1f}-{s['max_s']:.1f})"
        if s.get("peak_rss_mb"):
            line += f", peak RSS {s['peak_rss_mb']:.0f} MB"
        if s.get("speedup_vs_torchfcn"):
            line += (f", torchfcn / {name} = x{s['speedup_vs_torchfcn']:.2f} (per round: "
                     f"{', '.join(f'x{v:.2f}' for v in s['round_speedups'])}; median x{s['median_round_speedup']:.2f})")
        print(line)
    x = summary["pixelwise"].get("speedup_vs_torchfcn")
    if x:
        rounds = summary["pixelwise"]["round_speedups"]
        print(f"goal: pixelwise predict (second run) >= x{GOAL} faster than the pytorch-fcn script: "
              f"{'met' if x >= GOAL else 'missed'} (x{x:.2f} from the medians; {sum(v >= GOAL for v in rounds)} "
              f"of {len(rounds)} rounds at >= x{GOAL})")
    x8 = summary.get("pixelwise-int8", {}).get("speedup_vs_torchfcn")
    if x8:
        rounds = summary["pixelwise-int8"]["round_speedups"]
        print(f"goal: pixelwise predict --engine int8 >= x{GOAL_INT8} faster than the pytorch-fcn script: "
              f"{'met' if x8 >= GOAL_INT8 else 'missed'} (x{x8:.2f} from the medians; "
              f"{sum(v >= GOAL_INT8 for v in rounds)} of {len(rounds)} rounds at >= x{GOAL_INT8})")
    if info.get("agreement") is not None:
        print(f"labels: pixelwise and torchfcn agree on {100 * info['agreement']:.3f}% of the pixels "
              f"(worst image {100 * info['agreement_worst']:.3f}%)")
    if info.get("agreement_int8") is not None:
        print(f"labels: pixelwise --engine int8 and torchfcn agree on {100 * info['agreement_int8']:.3f}% of the "
              f"pixels (worst image {100 * info['agreement_int8_worst']:.3f}%; random weights)")


def main(argv: list[str] | None = None) -> int:
    """Set up, run the rounds, print (and with ``--output`` write JSON); return 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, default=None, help="work folder (kept; default: a temporary one)")
    p.add_argument("--rounds", type=int, default=3, help="timed interleaved rounds (default 3; 0: set-up and warm-up)")
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--size", type=int, default=500, help="image side (default 500)")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every process (default: torch's)")
    p.add_argument("--int8", action="store_true", help="also pixelwise predict --engine int8 (issue 27)")
    p.add_argument("--output", type=Path, default=None, help="write the result as JSON here")
    args = p.parse_args(argv)
    if args.rounds < 0 or args.images < 1 or args.size < 1:
        p.error("--rounds must be >= 0, --images and --size >= 1")
    folder = args.folder or Path(tempfile.mkdtemp(prefix="pixelwise-vs-torchfcn-"))
    try:
        return _run(args, folder)
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


def _run(args: argparse.Namespace, folder: Path) -> int:
    import torch

    from pixelwise.bench.peer import torchfcn_location
    from pixelwise.runtime import cpu_model

    torchfcn_path = torchfcn_location()  # fetched once into the user's cache when not installed
    print(f"set-up in {folder} ...", flush=True)
    images = folder / "images"
    write_images(images, args.images, args.size)
    ckpt, pth = write_weights(folder)
    cmds = commands(folder, images, ckpt, pth, torchfcn_path, args.threads, args.int8)
    export_s = export_int8(folder, ckpt, args.size, cmds["pixelwise"][1]) if args.int8 else None
    res = measure(cmds, args.rounds, folder / "logs")
    agree, worst = label_agreement(folder / "out" / "pixelwise", folder / "out" / "torchfcn")
    info = {"images": args.images, "size": args.size, "rounds": args.rounds, "cpu": cpu_model(),
            "cores": os.cpu_count(), "threads": args.threads or torch.get_num_threads(), "torch": torch.__version__,
            "agreement": agree, "agreement_worst": worst, "int8_export_s": export_s,
            "commands": {n: " ".join(argv) for n, (argv, _) in cmds.items()}}
    if args.int8:
        info["agreement_int8"], info["agreement_int8_worst"] = label_agreement(folder / "out" / "pixelwise-int8",
                                                                              folder / "out" / "torchfcn")
    summary = summarise(res)
    report(summary, info)
    if args.output:
        args.output.write_text(json.dumps({"info": info, "results": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
