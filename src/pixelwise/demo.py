"""``pixelwise demo``: both papers on the built-in world, end to end, on a 2-core CPU in minutes.

Four phases, each the real pipeline at a small size: (1) the ImageNet of the built-in world, a
VGG16-BN classifier of its object crops (:mod:`pixelwise.pretrain`, cached after the first run);
(2) FCN-32s -> FCN-16s -> FCN-8s fine-tuned from it in stages, as in the FCN paper; (3)
DeconvNet's two stages (object crops, then proposal crops, then batch-norm statistics) from the
same backbone; (4) evaluation on the validation scenes: FCN-8s on the whole image, DeconvNet on
selective-search proposals aggregated in image space, and their EDeconvNet ensemble, with IU by
object size. It uses :mod:`pixelwise.reproduce`'s training plan and evaluator (a subset of what
``pixelwise reproduce`` runs) and writes ``report.md``, ``predictions.png``, ``curves.png`` and
``results.json``. What departs from the papers is listed in :data:`NOT_PAPER_EXACT`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from pixelwise.data.synthetic import DEFAULT_WORLD
from pixelwise.metrics import format_size_table, format_table
from pixelwise.reproduce.config import ReproduceConfig
from pixelwise.reproduce.report import DEMO_CLAIMS, claim_checks, claims_table, name_of, pct
from pixelwise.reproduce.run import backbone_for, evaluate_all, train_all
from pixelwise.runtime import cpu_model
from pixelwise.train.recipes import get_recipe
from pixelwise.train.runlog import read_log, to_json
from pixelwise.viz.curves import plot_curves, save_figure

NOT_PAPER_EXACT = [
    "the built-in synthetic world (96x96 scenes, 4 classes: background, disc, square, triangle, each with thin "
    "parts) instead of PASCAL VOC, and its own object-crop classifier (pixelwise pretrain: 96-px crops, fc6 3x3) "
    "instead of ImageNet VGG16",
    "width x1/8 of the paper's channels, with the width floor (no layer under 16 channels here)",
    "FCN in the pad-free mode (no 100-pixel padding); SGD with a poly schedule and warm-up, 16 images per step, "
    "hundreds of steps instead of days",
    "DeconvNet on 96x96 proposals (fc6 3x3) instead of 224x224, trained with deep supervision (auxiliary class "
    "scorers after deconv-fc6 and every unpooling stage; beyond the paper, see docs/reproduce.md)",
    "selective search (top 20 boxes, sides >= 15 % of the image) instead of EdgeBoxes (top 50, sides >= 112 px)",
]


RECIPE = "demo"
"""The training recipe the demo runs (:mod:`pixelwise.train.recipes`); its settings below say only
what the demo changes or adds."""


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and step counts of one demo run; ``None`` = the demo recipe's value (width, batch,
    DeconvNet's input size, deep supervision and BN batches) or the models' width floor."""

    image_size: int = 96
    num_classes: int = 4
    train_images: int = 2000  # generated once and kept in memory
    val_images: int = 100
    pretrain_steps: int = 512
    pretrain_scenes: int = 2000
    fcn_steps: tuple[int, int, int] = (400, 300, 300)  # FCN-32s, 16s, 8s
    deconv_steps: tuple[int, int] = (450, 225)  # object crops, proposal crops
    top_k: int = 20
    grid_images: int = 6
    width: float | None = None
    min_channels: int | None = None
    batch: int | None = None
    bn_batches: int | None = None
    deep_supervision: float | None = None
    input_size: int | None = None

    def resolved(self) -> "DemoSettings":
        """Return these settings with every ``None`` filled from the recipe (and the width floor)."""
        from pixelwise.models.vgg import MIN_CHANNELS

        recipe = get_recipe(RECIPE)
        deconv = recipe.per_model["deconvnet"]
        defaults = dict(width=recipe.values["width"], min_channels=MIN_CHANNELS, batch=recipe.values["batch_size"],
                        bn_batches=recipe.per_sampling["proposals"]["bn_recalib_batches"],
                        deep_supervision=deconv["deep_supervision"], input_size=deconv["model_options"]["input_size"])
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})


QUICK = DemoSettings(image_size=32, train_images=8, val_images=2, width=0.03125, min_channels=4, pretrain_steps=2,
                     pretrain_scenes=16, fcn_steps=(2, 2, 2), deconv_steps=(2, 2), batch=2, bn_batches=1,
                     top_k=3, grid_images=2)
SHOWN = ("fcn8s", "deconvnet", "edeconvnet_mean")
"""The models in the predictions figure (and refined by the dense CRF in the report)."""
EVALUATED = ("fcn32s", "fcn16s", *SHOWN)


def demo_config(s: DemoSettings, out: Path, seed: int, progress: bool, threads: int) -> ReproduceConfig:
    """Return the :class:`ReproduceConfig` of a demo run (the subset of ``reproduce`` it runs)."""
    return ReproduceConfig(
        data_options={"size": s.image_size, "num_classes": s.num_classes, "length": max(s.train_images, s.val_images)},
        val_limit=s.val_images, out=str(out), seeds=[seed], device="cpu", recipe=RECIPE,
        pretrain_steps=s.pretrain_steps, pretrain_scenes=s.pretrain_scenes,
        pretrain_batch=32 if s.pretrain_scenes > 100 else 4, width=s.width, min_channels=s.min_channels,
        input_size=s.input_size, steps_32s=s.fcn_steps[0], steps_16s=s.fcn_steps[1], steps_8s=s.fcn_steps[2],
        fcn_batch=s.batch, steps_objects=s.deconv_steps[0], steps_proposals=s.deconv_steps[1],
        deep_supervision=s.deep_supervision, bn_batches=s.bn_batches, deconv_batch=s.batch, top_k=s.top_k,
        crf=True, crf_models=list(SHOWN), boundary=True, grid_indices=list(range(s.grid_images)), progress=progress,
        threads=threads,
    )


def run_demo(out: str | Path = "demo-out", *, seed: int = 0, quick: bool = False, threads: int = 0,
             progress: bool = True, settings: DemoSettings | None = None) -> dict:
    """Run the demo and write ``report.md``, ``predictions.png``, ``curves.png`` and
    ``results.json`` into ``out``. ``threads`` 0 = every core. Returns the results (metrics per
    model, timings)."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or _cores())
    try:
        return _run(Path(out), seed, quick, torch.get_num_threads(), progress, settings)
    finally:
        torch.set_num_threads(previous_threads)


def _run(out: Path, seed: int, quick: bool, threads: int, progress: bool, settings: DemoSettings | None) -> dict:
    s = (settings or (QUICK if quick else DemoSettings())).resolved()
    out.mkdir(parents=True, exist_ok=True)
    cfg = demo_config(s, out, seed, progress, threads)
    t0 = time.perf_counter()
    timings = {}

    def phase(name: str) -> None:
        print(f"pixelwise demo: {name}", file=sys.stderr, flush=True)

    def log(message: str) -> None:
        print(f"pixelwise demo:   {message}", file=sys.stderr, flush=True)

    phase(f"1/4 the backbone: VGG16-BN classifying object crops of the built-in world ({s.pretrain_steps} steps; "
          "cached after the first run)")
    t = time.perf_counter()
    backbone = backbone_for(cfg, log)
    timings["pretrain"] = time.perf_counter() - t

    phase(f"2/4 FCN-32s -> FCN-16s -> FCN-8s, fine-tuned in stages ({' + '.join(map(str, s.fcn_steps))} steps)")
    t = time.perf_counter()
    checkpoints = train_all(cfg, seed, out, backbone, log, only=("fcn8s",), resume=None)
    timings["fcn"] = time.perf_counter() - t

    phase(f"3/4 DeconvNet: object crops, then proposal crops, then batch-norm statistics "
          f"({' + '.join(map(str, s.deconv_steps))} steps)")
    t = time.perf_counter()
    checkpoints.update(train_all(cfg, seed, out, backbone, log, only=("deconvnet",), resume=None))
    timings["deconvnet"] = time.perf_counter() - t

    phase("4/4 evaluating the FCNs (whole image), DeconvNet (proposals), EDeconvNet and the dense CRF; writing the "
          "report")
    t = time.perf_counter()
    evaluated = evaluate_all(cfg, checkpoints, log, names=EVALUATED, memory=False)
    results = {name_of(k): r for k, r in evaluated["models"].items()}
    _figures(out, evaluated, s)
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    summary = {"settings": asdict(s), "seed": seed, "timings_s": timings, "results": results,
               "class_names": evaluated["class_names"], "mean_boxes": evaluated["mean_boxes"],
               "proposal_recall": evaluated["proposal_recall"],
               "claims": claim_checks({seed: evaluated["models"]}, DEMO_CLAIMS),
               "backbone": backbone, "machine": machine(threads), "collapsed": evaluated.get("collapsed", {})}
    (out / "results.json").write_text(to_json(summary, indent=1), encoding="utf-8")
    (out / "report.md").write_text(_report(summary, s, seed, quick), encoding="utf-8")
    phase(f"done in {timings['total']:.0f} s: mean IU " + ", ".join(
        f"{name_of(k)} {100 * results[name_of(k)]['mean_iu']:.1f}" for k in SHOWN) + f" -> {out / 'report.md'}")
    return summary


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine(threads: int) -> str:
    """Return a one-line description of this machine (CPU model, cores, threads, torch)."""
    import platform

    return f"{cpu_model()} ({platform.machine()}), {_cores()} cores, {threads} torch thread(s), torch {torch.__version__}"


def _figures(out: Path, evaluated: dict, s: DemoSettings) -> None:
    """Write predictions.png (image | truth | FCN-8s | DeconvNet | EDeconvNet) and curves.png."""
    from pixelwise.viz.grids import comparison_grid

    grid = evaluated["grid"]
    columns = {"truth": grid["truth"], **{name_of(k): grid[k] for k in SHOWN}}
    figure = comparison_grid(grid["image"], columns, evaluated["class_names"], evaluated["palette"], cell_size=1.8)
    save_figure(figure, out / "predictions.png")
    _curves(out, s)


def _curves(out: Path, s: DemoSettings) -> None:
    """Write curves.png: every run's loss and lr, each stage continuing the previous stage's steps."""
    runs = {}
    offset = 0
    for name, steps in (("fcn32s", s.fcn_steps[0]), ("fcn16s", s.fcn_steps[1]), ("fcn8s", s.fcn_steps[2])):
        runs[f"FCN ({name})"] = [{**r, "step": r.get("step", 0) + offset} for r in read_log(out / name / "log.jsonl")]
        offset += steps
    offset = 0
    for name, steps in (("deconvnet_objects", s.deconv_steps[0]), ("deconvnet", s.deconv_steps[1])):
        label = "objects" if name == "deconvnet_objects" else "proposals"
        runs[f"DeconvNet ({label}; + deep-supervision losses)"] = [
            {**r, "step": r.get("step", 0) + offset} for r in read_log(out / name / "log.jsonl")]
        offset += steps
    plot_curves(runs, out / "curves.png", title="pixelwise demo: training curves (stages continue the step count)")


def _report(summary: dict, s: DemoSettings, seed: int, quick: bool) -> str:
    res = summary["results"]
    t = summary["timings_s"]
    cmd = f"pixelwise demo --out demo-out --seed {seed}" + (" --quick" if quick else "")
    names = summary["class_names"]
    low, high = get_recipe(RECIPE).per_sampling["proposals"]["proposal_iou"]
    lines = [
        "# pixelwise demo report",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {summary['machine']}  ",
        f"Wall time: {t['total']:.0f} s (backbone {t['pretrain']:.0f} s, FCN {t['fcn']:.0f} s, DeconvNet "
        f"{t['deconvnet']:.0f} s, evaluation and report {t['report']:.0f} s)",
        "",
        f"Data: the built-in `{DEFAULT_WORLD}` world, {s.image_size}x{s.image_size} px, {s.train_images} training "
        "scenes, "
        f"{s.val_images} validation scenes, {len(names)} classes ({', '.join(names)}). Backbone: `{summary['backbone']}`.",
        "",
        "## Results (validation scenes)",
        "",
        f"FCN-8s on the whole image; DeconvNet on the top {s.top_k} selective-search proposals of each image "
        f"({summary['mean_boxes']:.1f} on average), each enlarged 1.2x, resized to {s.input_size}x{s.input_size} and "
        "aggregated by pixel-wise maximum (pixels no proposal covers: one whole-image DeconvNet pass); EDeconvNet: the "
        "mean of the two probability maps (the paper).",
        "",
        "```",
        format_table(res, names),
        "```",
        "",
        f"All-background baseline: mean IU about {100 * _background_baseline(res['FCN-8s']):.1f}. BF: boundary F1 "
        "score (docs/data.md#metrics), tolerance 0.75 % of the image diagonal. `+ CRF`: the release's dense CRF on "
        "the model's probabilities.",
        "",
        *[line for note in summary.get("collapsed", {}).values() for line in (f"**Collapsed**: {note}.", "")],
        *_recall_lines(summary.get("proposal_recall"), s.top_k),
        "## The papers' claims on this seed",
        "",
        "Margins in points (ours minus theirs); a win needs more than half a point.",
        "",
        claims_table(summary["claims"]),
        "",
        "IU by object size (mean IU over the classes, on the pixels of small / medium / large objects and background):",
        "",
    ]
    for key in SHOWN:
        r = res[name_of(key)]
        if r.get("size_buckets"):
            lines += [f"{name_of(key)}:", "", "```", format_size_table(r["size_buckets"]), "```", ""]
    lines += [
        "## Figures",
        "",
        "Validation scenes: image | truth | FCN-8s | DeconvNet | EDeconvNet",
        "",
        "![predictions](predictions.png)",
        "",
        "Training loss and learning rate (each stage continues the previous stage's steps; DeconvNet's loss adds its "
        "deep-supervision terms, so it is not on FCN's scale):",
        "",
        "![curves](curves.png)",
        "",
        "## Settings",
        "",
        f"- Backbone: VGG16-BN, width {s.width} (floor {s.min_channels} channels), trained {s.pretrain_steps} steps "
        "(Adam) to classify 96-px object crops of separate `pretrain` scenes; FCN takes it with batch norm folded "
        "into the convolutions, DeconvNet as it is (fc6/fc7 batch norm new).",
        f"- FCN: FCN-32s {s.fcn_steps[0]} steps from the backbone (score layers zero), FCN-16s {s.fcn_steps[1]} steps "
        f"from FCN-32s, FCN-8s {s.fcn_steps[2]} steps from FCN-16s; SGD momentum 0.9, lr 0.01, poly schedule, "
        f"{s.batch} whole images per step, flips.",
        f"- DeconvNet: stage 1 {s.deconv_steps[0]} steps of object-centred crops, stage 2 {s.deconv_steps[1]} steps "
        f"of jittered proposals (IoU {low:g}-{high:g} with an object), {s.batch} crops of {s.input_size}x{s.input_size} per "
        f"step, SGD as above, deep supervision weight {s.deep_supervision:g}; batch-norm statistics recomputed over "
        f"{s.bn_batches} batches.",
        "- Checkpoints, logs and per-run curves: `fcn32s/`, `fcn16s/`, `fcn8s/`, `deconvnet_objects/`, `deconvnet/`.",
        "",
        "## Not paper-exact",
        "",
        *[f"- {item}" for item in NOT_PAPER_EXACT],
        "",
    ]
    return "\n".join(lines)


def _recall_lines(recall: dict | None, top_k: int) -> list[str]:
    """The report's lines on how many objects DeconvNet's proposals find (none without proposals)."""
    if not recall:
        return []
    return [f"Proposal recall: the top {top_k} selective-search boxes (as DeconvNet uses them) overlap "
            f"{pct(recall['all'])} % of the {recall['objects']} objects with IoU >= {recall['iou']:g} (small "
            f"{pct(recall['small'])} %, medium {pct(recall['medium'])} %, large {pct(recall['large'])} %).", ""]


def _background_baseline(results: dict) -> float:
    """Mean IU of predicting background everywhere, from a confusion matrix's row sums."""
    m = np.asarray(results["confusion"], dtype=np.float64)
    truth = m.sum(axis=1)
    if truth.sum() == 0:
        return float("nan")
    present = truth > 0
    return float(truth[0] / truth.sum() / present.sum())


__all__ = ["DemoSettings", "QUICK", "run_demo"]
