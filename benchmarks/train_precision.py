"""Training speed *and* accuracy of fp32 NCHW, fp32 channels_last and bf16 autocast (+ channels_last),
on the demo's own short runs (issue 15, point 4).

    .venv/bin/python benchmarks/train_precision.py                       # 2 seeds, 3 variants
    .venv/bin/python benchmarks/train_precision.py --variants nchw,channels_last --seeds 0

For every variant and seed it trains, from the demo's cached pretrained backbone, the first stage of
each family (``--stages``) exactly as ``pixelwise demo`` does (FCN-32s, 400 steps; DeconvNet on object crops, 450
steps; demo recipe: width 1/8, batch 16, 96-px images), then evaluates both on the demo's 100
validation images the way the demo does (FCN-32s on the whole image, DeconvNet on proposals), always
in fp32 so that only the training differs. Prints one JSON line per run and a Markdown table:
median images/s of the training steps (from each run's ``log.jsonl``), wall seconds and mean IU.
The variants' runs are interleaved (seed-major), so a busy machine slows them alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

VARIANTS = {
    "nchw": dict(channels_last=False, precision="fp32"),
    "channels_last": dict(channels_last=True, precision="fp32"),
    "bf16": dict(channels_last=True, precision="bf16"),
}
STAGES = ("fcn32s", "deconvnet_objects")
MODEL_OF = {"fcn32s": "fcn32s", "deconvnet_objects": "deconvnet"}  # the name evaluate_all scores it under


def train_and_score(variant: str, seed: int, root: Path, backbone: str, settings, stages: tuple[str, ...]) -> dict:
    """Train ``stages`` with ``variant``'s options; return speed and fp32 mean IU per model."""
    from pixelwise.demo import demo_config
    from pixelwise.reproduce.run import evaluate_all, shared_options, training_plan
    from pixelwise.train.runlog import read_log
    from pixelwise.train.staged import run_stages

    out = root / f"{variant}-seed{seed}"
    cfg = demo_config(settings, out, seed, progress=False, threads=0)
    plan = [s for s in training_plan(cfg, backbone) if s.name in stages]
    shared = {**shared_options(cfg, seed), **VARIANTS[variant]}
    results = run_stages(plan, out, shared, log=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    checkpoints = {MODEL_OF[name]: {"checkpoint": r.out / "last.pt", "train_seconds": r.seconds}
                   for name, r in results.items()}
    evaluated = evaluate_all(cfg, checkpoints, lambda m: None, names=tuple(checkpoints), memory=False)
    row = {"variant": variant, "seed": seed, **VARIANTS[variant]}
    for name, r in results.items():
        rates = [rec["images_per_s"] for rec in read_log(r.out / "log.jsonl")
                 if rec.get("type") == "train" and rec.get("images_per_s")]
        model = MODEL_OF[name]
        row[f"{model}_images_per_s"] = statistics.median(rates) if rates else None
        row[f"{model}_train_s"] = r.seconds
        row[f"{model}_mean_iu"] = evaluated["models"][model]["mean_iu"]
    return row


def table(rows: list[dict]) -> str:
    """Return a Markdown table of the runs: per model, median images/s, training seconds, mean IU."""
    models = [m for m in ("fcn32s", "deconvnet") if f"{m}_mean_iu" in rows[0]]
    head = "".join(f" {m} img/s | {m} s | {m} mean IU |" for m in models)
    lines = [f"| variant | seed |{head}", "|---|---|" + "---|---|---|" * len(models)]
    for r in rows:
        cells = "".join(f" {r[f'{m}_images_per_s']:.1f} | {r[f'{m}_train_s']:.0f} | {100 * r[f'{m}_mean_iu']:.1f} |"
                        for m in models)
        lines.append(f"| {r['variant']} | {r['seed']} |{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every (seed, variant), print JSON lines and the table; return 0."""
    from pixelwise.demo import QUICK, DemoSettings, demo_config
    from pixelwise.reproduce.run import backbone_for
    from pixelwise.runtime import cpu_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    p.add_argument("--output", default=None, help="also write the rows as JSON here")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    p.add_argument("--steps", type=int, default=None, help="steps of every stage (default: the demo's)")
    p.add_argument("--quick", action="store_true", help="the demo's few-step settings (a smoke test, no numbers)")
    args = p.parse_args(argv)
    settings = (QUICK if args.quick else DemoSettings()).resolved()
    if args.steps:
        settings = replace(settings, fcn_steps=(args.steps,) * 3, deconv_steps=(args.steps,) * 2)
    stages = tuple(args.stages.split(","))
    root = Path(args.out or tempfile.mkdtemp(prefix="pw_train_precision_"))
    backbone = backbone_for(demo_config(settings, root, 0, progress=False, threads=0),
                            lambda m: print(m, file=sys.stderr))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for variant in args.variants.split(","):
            print(f"{variant}, seed {seed}", file=sys.stderr, flush=True)
            rows.append(train_and_score(variant, seed, root, backbone, settings, stages))
            print(json.dumps(rows[-1]), flush=True)
    import torch

    print(f"\n{cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}\n\n{table(rows)}")
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
