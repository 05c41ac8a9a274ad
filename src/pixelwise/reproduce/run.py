"""``pixelwise reproduce``: train every model of both papers, evaluate them, write their tables.

Trains FCN-32s, FCN-16s (from 32s), FCN-8s (from 16s), FCN-8s at-once and DeconvNet (object crops,
then proposals, then batch-norm statistics), then evaluates on the validation split: each FCN on
the whole image; DeconvNet on object proposals aggregated in image space; EDeconvNet (mean and
product) from the same score maps; and every model again after a dense CRF. See
:mod:`pixelwise.reproduce.report` for what is written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from pixelwise.checkpoint import load_model
from pixelwise.data import build_dataset
from pixelwise.inference.boxes import prepare_boxes
from pixelwise.inference.pipeline import deconvnet_scores
from pixelwise.inference.predict import dense_logits, image_tensor
from pixelwise.inference.proposals import generate_proposals
from pixelwise.metrics import ConfusionMatrix, SizeBucketIU
from pixelwise.models.ensemble import combine_scores
from pixelwise.models.flops import count_parameters
from pixelwise.reproduce.config import ReproduceConfig
from pixelwise.reproduce.upper_bound import upper_bound_miou
from pixelwise.runtime import resolve_device

FCN_MODELS = ("fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce")
DISPLAY = {
    "fcn32s": "FCN-32s",
    "fcn16s": "FCN-16s",
    "fcn8s": "FCN-8s",
    "fcn8s_atonce": "FCN-8s at-once",
    "deconvnet": "DeconvNet",
    "edeconvnet_mean": "EDeconvNet (mean)",
    "edeconvnet_product": "EDeconvNet (product)",
}


@dataclass
class Scorer:
    """Metrics, size buckets and time of one evaluated model (or model + CRF)."""

    num_classes: int
    cm: ConfusionMatrix = field(init=False)
    sizes: SizeBucketIU = field(init=False)
    seconds: float = 0.0
    images: int = 0

    def __post_init__(self) -> None:
        self.cm = ConfusionMatrix(self.num_classes)
        self.sizes = SizeBucketIU(self.num_classes)

    def update(self, probs_or_pred: np.ndarray, sample: dict, seconds: float) -> None:
        pred = probs_or_pred.argmax(0) if probs_or_pred.ndim == 3 else probs_or_pred
        pred_t = torch.from_numpy(np.asarray(pred, dtype=np.int64))
        target = torch.from_numpy(sample["mask"].astype(np.int64))
        self.cm.update(pred_t, target)
        if "size_map" in sample:
            self.sizes.update(pred_t, target, torch.from_numpy(sample["size_map"].astype(np.int64)))
        self.seconds += seconds
        self.images += 1

    def result(self) -> dict:
        out = dict(self.cm.compute())
        out["by_size"] = self.sizes.compute() if self.sizes.matrices["small"].matrix.sum() > 0 else None
        out["ms_per_image"] = 1000.0 * self.seconds / max(1, self.images)
        return out


def _train(cfg: ReproduceConfig, overrides: dict, log: Callable[[str], None]) -> Path:
    """Run one training (resuming a finished or interrupted one in place); return its last.pt."""
    from pixelwise.train.staged import launch

    out = Path(overrides["out"])
    base = {
        "recipe": cfg.recipe,
        "dataset": cfg.dataset,
        "data_root": cfg.data_root,
        "data_options": dict(cfg.data_options),
        "train_split": cfg.train_split,
        "val_split": "",  # evaluation is done once, below, the same way for every model
        "seed": cfg.seed,
        "device": cfg.device,
        "progress": cfg.progress,
        "stages": [],
    }
    start = time.perf_counter()
    log(f"training {overrides['model']} -> {out}")
    launch({**base, **overrides}, resume="auto")
    log(f"trained {overrides['model']} in {time.perf_counter() - start:.0f} s")
    return out / "last.pt"


def train_all(cfg: ReproduceConfig, log: Callable[[str], None]) -> dict[str, dict]:
    """Train every model; return ``{name: {"checkpoint": path, "train_seconds": s}}``."""
    root = Path(cfg.out) / "train"
    fcn = dict(width=cfg.fcn_width, pad100=cfg.pad100)
    deconv = dict(model="deconvnet", width=cfg.deconv_width, crop_size=cfg.crop_size)
    if cfg.fcn_batch:
        fcn["batch_size"] = cfg.fcn_batch
    if cfg.deconv_batch:
        deconv["batch_size"] = cfg.deconv_batch
    plan: list[tuple[str, dict]] = [
        ("fcn32s", dict(fcn, model="fcn32s", steps=cfg.steps_32s)),
        ("fcn16s", dict(fcn, model="fcn16s", steps=cfg.steps_16s, init_from="fcn32s")),
        ("fcn8s", dict(fcn, model="fcn8s", steps=cfg.steps_8s, init_from="fcn16s")),
        ("fcn8s_atonce", dict(fcn, model="fcn8s_atonce", steps=cfg.steps_atonce)),
        ("deconvnet_objects", dict(deconv, sampling="objects", steps=cfg.steps_objects, bn_recalib_batches=0)),
        ("deconvnet", dict(deconv, sampling="proposals", steps=cfg.steps_proposals,
                           bn_recalib_batches=cfg.bn_batches, init_from="deconvnet_objects")),
    ]
    done: dict[str, dict] = {}
    for name, overrides in plan:
        overrides = dict(overrides, out=str(root / name))
        if "init_from" in overrides:
            overrides["init_from"] = str(done[overrides["init_from"]]["checkpoint"])
        start = time.perf_counter()
        ckpt = _train(cfg, overrides, log)
        seconds = time.perf_counter() - start
        if name == "deconvnet":
            seconds += done["deconvnet_objects"]["train_seconds"]
        done[name] = {"checkpoint": ckpt, "train_seconds": seconds}
    return done


def _rss_mb() -> float | None:
    from pixelwise.bench.memory import current_rss_mb

    return current_rss_mb()


def evaluate_all(cfg: ReproduceConfig, checkpoints: dict[str, dict], log: Callable[[str], None]) -> dict:
    """Evaluate every model (and its CRF version) on the validation split; return the results dict."""
    device = resolve_device(cfg.device)
    val = build_dataset(cfg.dataset, root=cfg.data_root, split=cfg.val_split, **cfg.data_options)
    n = len(val) if cfg.val_limit is None else min(cfg.val_limit, len(val))
    num_classes = val.num_classes
    models = {name: load_model(checkpoints[name]["checkpoint"]).to(device) for name in (*FCN_MODELS, "deconvnet")}
    names = [*FCN_MODELS, "deconvnet", "edeconvnet_mean", "edeconvnet_product"]
    crf_ok = cfg.crf
    if crf_ok:
        from pixelwise.inference.crf import crf_available

        crf_ok = crf_available()
        if not crf_ok:
            log("dense CRF skipped: install the extra with `pip install pixelwise[crf]`")
    scorers = {k: Scorer(num_classes) for k in names}
    if crf_ok:
        scorers.update({f"{k}+crf": Scorer(num_classes) for k in names})
    memory = _memory_per_model(cfg, models, val[0]["image"])
    grid: dict[str, list] = {"image": [], "truth": [], **{k: [] for k in scorers}}
    grid_set = set(cfg.grid_indices)
    boxes_used = []
    masks = []
    for i in tqdm(range(n), desc="reproduce: evaluate", disable=not cfg.progress, unit="img"):
        sample = val[i]
        image = sample["image"]
        masks.append(sample["mask"])
        scores: dict[str, torch.Tensor] = {}
        seconds: dict[str, float] = {}
        for name in FCN_MODELS:
            t = time.perf_counter()
            scores[name] = dense_logits(models[name], image_tensor(image, models[name])[None])[0]
            seconds[name] = time.perf_counter() - t
        t = time.perf_counter()
        deconv = models["deconvnet"]
        raw = generate_proposals(image, cfg.proposals)
        boxes, _ = prepare_boxes(*raw, image_hw=image.shape[:2], min_box_frac=cfg.min_box_frac, top_k=cfg.top_k)
        scores["deconvnet"], _ = deconvnet_scores(
            deconv, image_tensor(image, deconv), boxes, size=cfg.crop_size, batch=cfg.proposal_batch
        )
        seconds["deconvnet"] = time.perf_counter() - t
        boxes_used.append(len(boxes))
        for mode in ("mean", "product"):
            t = time.perf_counter()
            scores[f"edeconvnet_{mode}"] = combine_scores(scores["fcn8s"][None], scores["deconvnet"][None], mode)[0]
            seconds[f"edeconvnet_{mode}"] = time.perf_counter() - t + seconds["fcn8s"] + seconds["deconvnet"]
        in_grid = i in grid_set
        if in_grid:
            grid["image"].append(image)
            grid["truth"].append(sample["mask"])
        for name in names:
            probs = scores[name].float().softmax(0).cpu().numpy()
            scorers[name].update(probs, sample, seconds[name])
            if in_grid:
                grid[name].append(probs.argmax(0).astype(np.uint8))
            if crf_ok:
                from pixelwise.inference.crf import dense_crf

                t = time.perf_counter()
                refined = dense_crf(image, probs)
                scorers[f"{name}+crf"].update(refined, sample, seconds[name] + time.perf_counter() - t)
                if in_grid:
                    grid[f"{name}+crf"].append(refined.argmax(0).astype(np.uint8))
    results = {name: s.result() for name, s in scorers.items()}
    for name in names:
        base = name.split("_")[0] if name.startswith("edeconvnet") else name
        parts = ["fcn8s", "deconvnet"] if base == "edeconvnet" else [name]
        results[name]["params"] = int(sum(count_parameters(models[p]) for p in parts))
        results[name]["train_seconds"] = float(sum(checkpoints[p]["train_seconds"] for p in parts))
        results[name]["peak_mb"] = sum(memory[p] for p in parts) if all(memory.get(p) is not None for p in parts) else None
    return {
        "models": results,
        "class_names": list(val.class_names),
        "num_images": n,
        "mean_boxes": float(np.mean(boxes_used)) if boxes_used else 0.0,
        "upper_bound": {str(f): r for f, r in upper_bound_miou(masks, num_classes).items()},
        "grid": grid,
        "peak_rss_mb": _peak_rss(),
    }


def _memory_per_model(cfg: ReproduceConfig, models: dict, image: np.ndarray) -> dict[str, float | None]:
    """Peak resident memory added by one image's inference with each model, in MB (Linux; None
    where the peak cannot be reset)."""
    from pixelwise.bench.memory import peak_rss_mb, reset_peak_rss

    out: dict[str, float | None] = {}
    for name, model in models.items():
        if not reset_peak_rss():
            out[name] = None
            continue
        base = peak_rss_mb()
        x = image_tensor(image, model)
        if name == "deconvnet":
            boxes, _ = prepare_boxes(*generate_proposals(image, cfg.proposals), image_hw=image.shape[:2],
                                     min_box_frac=cfg.min_box_frac, top_k=cfg.top_k)
            deconvnet_scores(model, x, boxes, size=cfg.crop_size, batch=cfg.proposal_batch)
        else:
            dense_logits(model, x[None])
        out[name] = max(0.0, peak_rss_mb() - base)
    return out


def _peak_rss() -> float | None:
    from pixelwise.bench.memory import peak_rss_mb

    return peak_rss_mb()


def reproduce(cfg: ReproduceConfig, *, log: Callable[[str], None] = print) -> dict:
    """Train and evaluate everything; write the tables and figure into ``cfg.out``; return results."""
    from pixelwise.reproduce.report import write_report

    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    checkpoints = train_all(cfg, log)
    train_seconds = time.perf_counter() - start
    results = evaluate_all(cfg, checkpoints, log)
    results["config"] = cfg.to_dict()
    results["seconds"] = {"train": train_seconds, "total": time.perf_counter() - start}
    write_report(results, out)
    (out / "results.json").write_text(
        json.dumps({k: v for k, v in results.items() if k != "grid"}, indent=2, default=float)
    )
    return results
