"""``pixelwise reproduce``: train every model of both papers, evaluate them, write their tables.

Trains FCN-32s, FCN-16s (from 32s), FCN-8s (from 16s), FCN-8s at-once and DeconvNet (object crops,
then proposals, then batch-norm statistics), then evaluates on the validation split: each FCN on
the whole image; DeconvNet on object proposals aggregated in image space; EDeconvNet as the paper
combines it (mean) and as the release does (product of floored scores, 0 where no proposal is) from
the same score maps; and every model again after the release's dense CRF. See
:mod:`pixelwise.reproduce.report` for what is written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from pixelwise.checkpoint import load_model
from pixelwise.data import build_dataset
from pixelwise.data.instances import SIZE_BUCKETS
from pixelwise.data.transforms import rescale_image
from pixelwise.errors import PixelwiseError
from pixelwise.evaluator import Evaluator
from pixelwise.inference.boxes import objects_found, prepare_boxes
from pixelwise.inference.pipeline import deconvnet_scores
from pixelwise.inference.predict import dense_logits, full_size, image_tensor
from pixelwise.inference.proposals import generate_proposals
from pixelwise.models.ensemble import combine_scores
from pixelwise.models.flops import count_parameters
from pixelwise.reproduce.config import MODELS, ReproduceConfig
from pixelwise.reproduce.camvid import camvid_checks, camvid_sections
from pixelwise.reproduce.report import claim_checks, name_of, write_report
from pixelwise.reproduce.upper_bound import upper_bound_miou
from pixelwise.runtime import resolve_device
from pixelwise.train.diagnose import collapse_notes
from pixelwise.train.staged import Stage, run_stages


def backbone_for(cfg: ReproduceConfig, log: Callable[[str], None]) -> str | None:
    """Return the backbone weights every model starts from: ``cfg.backbone_weights``, or on the
    synthetic world the (cached) :mod:`pixelwise.pretrain` classifier; None = from scratch."""
    if cfg.backbone_weights or cfg.dataset != "synthetic":
        if not cfg.backbone_weights:
            log("no --backbone-weights: every model is trained from scratch (the papers start from ImageNet VGG16)")
        return cfg.backbone_weights
    from pixelwise.pretrain import cached_pretrain

    result = cached_pretrain(cfg.pretrain_config(), log=log)
    log(f"backbone: {result.weights} (held-out object accuracy {100 * result.accuracy:.1f} %)")
    return str(result.weights)


def training_plan(cfg: ReproduceConfig, backbone: str | None) -> list[Stage]:
    """Return the stages in order: FCN-32s -> 16s -> 8s (each from the previous), FCN-8s at once,
    DeconvNet's two stages. Models that do not start from a previous stage start from ``backbone``."""
    start = {"backbone_weights": backbone} if backbone else {}
    fcn = dict(model_options={"pad100": cfg.pad100, "fc6_kernel": cfg.input_size // 32})
    if cfg.crop_size:
        fcn["crop_size"] = cfg.crop_size
    deconv = dict(model="deconvnet", model_options={"input_size": cfg.input_size}, crop_size=cfg.input_size,
                  deep_supervision=cfg.deep_supervision)
    if cfg.fcn_batch:
        fcn["batch_size"] = cfg.fcn_batch
    if cfg.deconv_batch:
        deconv["batch_size"] = cfg.deconv_batch
    fcn_stages = [
        Stage("fcn32s", dict(fcn, **start, **_selection(cfg, cfg.steps_32s), model="fcn32s")),
        Stage("fcn16s", dict(fcn, **_selection(cfg, cfg.steps_16s), model="fcn16s"), start_from="fcn32s"),
        Stage("fcn8s", dict(fcn, **_selection(cfg, cfg.steps_8s), model="fcn8s"), start_from="fcn16s"),
        Stage("fcn8s_atonce", dict(fcn, **start, **_selection(cfg, cfg.steps_atonce), model="fcn8s_atonce")),
    ]
    if cfg.deconv_sampling == "whole":  # as SegNet's comparison trains it: crops of whole images, one stage
        return fcn_stages + [
            Stage("deconvnet", dict(deconv, **start, **_selection(cfg, cfg.steps_deconv_whole), sampling="whole",
                                    crop_size=cfg.crop_size or cfg.input_size, bn_recalib_batches=cfg.bn_batches)),
        ]
    return fcn_stages + [
        Stage("deconvnet_objects", dict(deconv, **start, sampling="objects", steps=cfg.steps_objects,
                                        bn_recalib_batches=0)),
        Stage("deconvnet", dict(deconv, sampling="proposals", steps=cfg.steps_proposals,
                                bn_recalib_batches=cfg.bn_batches), start_from="deconvnet_objects"),
    ]


def _selection(cfg: ReproduceConfig, steps: int) -> dict:
    """A stage's steps and, with ``select_on_val``, validation four times a run (best.pt is kept)."""
    if not cfg.select_on_val:
        return {"steps": steps}
    return {"steps": steps, "val_split": cfg.val_split, "eval_every": max(1, steps // 4)}


def shared_options(cfg: ReproduceConfig, seed: int) -> dict:
    """Return the training options every stage shares (data, seed, device, width, ...)."""
    shared = {
        "recipe": cfg.recipe,
        "dataset": cfg.dataset,
        "data_root": cfg.data_root,
        "data_options": dict(cfg.data_options),
        "train_split": cfg.train_split,
        "val_split": "",  # evaluation is done once, afterwards, the same way for every model
        "seed": seed,
        "device": cfg.device,
        "progress": cfg.progress,
        "width": cfg.width,
        "threads": cfg.threads,
    }
    if cfg.min_channels is not None:
        shared["min_channels"] = cfg.min_channels
    if cfg.input_scale != 1.0:
        shared["input_scale"] = cfg.input_scale
    return shared


def train_all(cfg: ReproduceConfig, seed: int, root: Path, backbone: str | None, log: Callable[[str], None],
              only: tuple[str, ...] | None = None, resume: str | None = "auto") -> dict[str, dict]:
    """Train the stages of :func:`training_plan` (``only`` those named and what they start from)
    into ``root`` with the staged launcher; return ``{name: {"checkpoint": path, "train_seconds": s}}``
    (DeconvNet's seconds include its first stage). With ``resume="auto"`` a finished run found
    there is kept and an interrupted one continued."""
    plan = training_plan(cfg, backbone)
    needed = set(only or [stage.name for stage in plan])
    for stage in reversed(plan):
        if stage.name in needed and stage.start_from:
            needed.add(stage.start_from)
    stages = [stage for stage in plan if stage.name in needed]
    results = run_stages(stages, root, shared_options(cfg, seed), resume=resume, log=log)
    if any(r.status != "finished" for r in results.values()):
        raise PixelwiseError(f"training was interrupted; run the same command again to continue ({root})")
    done = {name: {"checkpoint": _chosen(cfg, r.out), "train_seconds": r.seconds} for name, r in results.items()}
    if "deconvnet" in done and "deconvnet_objects" in done:
        done["deconvnet"]["train_seconds"] += done["deconvnet_objects"]["train_seconds"]
    return done


def _chosen(cfg: ReproduceConfig, run: Path) -> Path:
    """The checkpoint a stage is scored with: its best on the validation split with ``select_on_val``,
    else its last."""
    best = run / "best.pt"
    return best if cfg.select_on_val and best.is_file() else run / "last.pt"


ENSEMBLES = ("edeconvnet_mean", "edeconvnet_release")
"""The paper's ensemble (mean of the two probability maps) and the release's (``max0``-aggregated
DeconvNet scores, 0 where no proposal is, times FCN-8s scores floored at 0)."""
RECALL_IOU = 0.5
"""An object counts as found by the proposals when one box overlaps its box by this IoU."""
MEMBERS = {"edeconvnet_mean": ("fcn8s", "deconvnet"), "edeconvnet_release": ("fcn8s", "deconvnet")}


def evaluated_models(cfg: ReproduceConfig) -> tuple[str, ...]:
    """The models scored: the trained ones (``cfg.models``, default all) and every ensemble whose
    members are among them."""
    trained = tuple(cfg.models or MODELS)
    ensembles = tuple(e for e in ENSEMBLES if all(m in trained for m in MEMBERS[e]))
    if cfg.proposals == "none":  # the release's product needs proposal coverage
        ensembles = tuple(e for e in ensembles if e != "edeconvnet_release")
    return (*trained, *ensembles)


def proposal_boxes(cfg: ReproduceConfig, image: np.ndarray) -> np.ndarray | None:
    """Return the ``(K, 4)`` boxes DeconvNet runs on for ``image`` (the configured proposals; None
    with ``proposals="none"``: DeconvNet then runs on the whole image)."""
    if cfg.proposals == "none":
        return None
    raw = generate_proposals(image, cfg.proposals)
    boxes, _ = prepare_boxes(*raw, image_hw=image.shape[:2], min_box_frac=cfg.min_box_frac, top_k=cfg.top_k)
    return boxes


def image_scores(cfg: ReproduceConfig, models: dict, image: np.ndarray,
                 names: list[str]) -> tuple[dict, dict, np.ndarray | None]:
    """Return ``(scores, seconds, boxes)`` for one image: ``(C, H, W)`` scores of every model in
    ``names`` (FCNs on the whole image, DeconvNet on proposals, ensembles from their members), the
    time each took (ensembles: members included) and DeconvNet's ``(K, 4)`` proposal boxes in the
    image's pixels (None without DeconvNet or proposals)."""
    scores: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    used = None
    coverage = None
    work = rescale_image(image, cfg.input_scale)  # the networks see the image at their input scale
    for name, model in models.items():
        t = time.perf_counter()
        x = image_tensor(work, model)
        if name == "deconvnet":
            boxes = proposal_boxes(cfg, work)
            used = None if boxes is None else boxes / cfg.input_scale
            scores[name], coverage = deconvnet_scores(model, x, boxes, size=cfg.input_size, batch=cfg.proposal_batch)
            if coverage is not None and coverage.shape != image.shape[:2]:
                coverage = full_size(coverage[None].float(), image.shape[:2], "nearest")[0] > 0.5
        else:
            scores[name] = dense_logits(model, x[None])[0]
        scores[name] = full_size(scores[name], image.shape[:2])
        seconds[name] = time.perf_counter() - t
    for name in names:
        if name in MEMBERS:
            t = time.perf_counter()
            fcn, deconv = MEMBERS[name]
            member = scores[deconv]
            if name == "edeconvnet_release" and coverage is not None:
                # the release's DeconvNet map: max over boxes started from 0 (= the max floored where a
                # box is), 0 where none is; the product then floors FCN-8s
                member = torch.where(coverage, member, torch.zeros_like(member))
            mode = "mean" if name == "edeconvnet_mean" else "product"
            scores[name] = combine_scores(scores[fcn][None], member[None], mode)[0]
            seconds[name] = time.perf_counter() - t + seconds[fcn] + seconds[deconv]
    return scores, seconds, used


def proposal_recall(found: list[tuple[int, bool]], threshold: float) -> dict:
    """Return the proposal recall from ``(size bucket, found)`` pairs, one per object: the share
    found overall and per bucket (``small``/``medium``/``large``; NaN without such objects), the
    object count and the IoU ``threshold``."""
    out: dict = {"iou": threshold, "objects": len(found)}
    for name, bucket in (("all", None), *((n, b) for b, n in enumerate(SIZE_BUCKETS, start=1))):
        hits = [ok for b, ok in found if bucket is None or b == bucket]
        out[name] = float(np.mean(hits)) if hits else float("nan")
    return out


def _objects_found(boxes: np.ndarray, sample: dict, threshold: float) -> list[tuple[int, bool]]:
    """``(size bucket, found)`` for each object of ``sample`` (its ``boxes``, buckets from its
    ``size_map`` at the object's pixels) against the proposal ``boxes``."""
    objects = sample.get("boxes")
    if objects is None or sample.get("size_map") is None or sample.get("instances") is None:
        return []
    found = objects_found(boxes, objects, threshold)
    inst, size_map = sample["instances"], sample["size_map"]
    return [(int(size_map[inst == k + 1].max()), bool(ok)) for k, ok in enumerate(found)]


def evaluate_all(cfg: ReproduceConfig, checkpoints: dict[str, dict], log: Callable[[str], None], *,
                 names: tuple[str, ...] | None = None, memory: bool = True) -> dict:
    """Evaluate the models ``names`` (default :func:`evaluated_models`; with ``cfg.crf``, those of
    ``cfg.crf_models`` also after a dense CRF) on the evaluation split at full resolution; return the
    results dict (metrics per model, grid images, upper bound, ``collapsed``: a line per model that
    predicts one class on (nearly) every pixel, logged too, ...)."""
    device = resolve_device(cfg.device)
    names = evaluated_models(cfg) if names is None else names
    val = build_dataset(cfg.dataset, root=cfg.data_root, split=cfg.eval_split or cfg.val_split, **cfg.data_options)
    n = len(val) if cfg.val_limit is None else min(cfg.val_limit, len(val))
    num_classes = val.num_classes
    names = list(names)
    loaded = list(dict.fromkeys(m for name in names for m in MEMBERS.get(name, (name,))))
    models = {name: load_model(checkpoints[name]["checkpoint"]).to(device) for name in loaded}
    crf_ok = cfg.crf
    if crf_ok:
        from pixelwise.inference.crf import crf_available

        crf_ok = crf_available()
        if not crf_ok:
            log("dense CRF skipped: install the extra with `pip install pixelwise[crf]`")
    crf_names = [k for k in names if crf_ok and (cfg.crf_models is None or k in cfg.crf_models)]
    scorers = {k: Evaluator(num_classes, boundary=cfg.boundary) for k in names}
    scorers.update({f"{k}+crf": Evaluator(num_classes, boundary=cfg.boundary) for k in crf_names})
    grid: dict[str, list] = {"image": [], "truth": [], **{k: [] for k in scorers}}
    grid_set = set(cfg.grid_indices)
    boxes_used = []
    found: list[tuple[int, bool]] = []
    masks = []
    for i in tqdm(range(n), desc="reproduce: evaluate", disable=not cfg.progress or None, unit="img"):
        sample = val[i]
        image = sample["image"]
        masks.append(sample["mask"])
        scores, seconds, boxes = image_scores(cfg, models, image, names)
        if "deconvnet" in models:
            boxes_used.append(0 if boxes is None else len(boxes))
            if boxes is not None:
                found += _objects_found(boxes, sample, RECALL_IOU)
        in_grid = i in grid_set
        if in_grid:
            grid["image"].append(image)
            grid["truth"].append(sample["mask"])
        for name in names:
            probs = scores[name].float().softmax(0).cpu().numpy()
            scorers[name].add(probs, sample["mask"], size_map=sample.get("size_map"), seconds=seconds[name])
            if in_grid:
                grid[name].append(probs.argmax(0).astype(np.uint8))
            if name in crf_names:
                from pixelwise.inference.crf import dense_crf

                t = time.perf_counter()
                refined = dense_crf(image, probs)
                scorers[f"{name}+crf"].add(refined, sample["mask"], size_map=sample.get("size_map"),
                                           seconds=seconds[name] + time.perf_counter() - t)
                if in_grid:
                    grid[f"{name}+crf"].append(refined.argmax(0).astype(np.uint8))
    results = {name: s.result() for name, s in scorers.items()}
    first = val[0]["image"]
    for name in names:
        parts = MEMBERS.get(name, (name,))
        results[name]["params"] = int(sum(count_parameters(models[p]) for p in parts))
        results[name]["train_seconds"] = float(sum(checkpoints[p]["train_seconds"] for p in parts))
        results[name]["peak_mb"] = _peak_memory(cfg, [checkpoints[p]["checkpoint"] for p in parts], first) if memory else None
    collapsed = collapse_notes(results, list(val.class_names), display=name_of)
    for note in collapsed.values():
        log(note)
    return {
        "models": results,
        "class_names": list(val.class_names),
        "num_images": n,
        "mean_boxes": float(np.mean(boxes_used)) if boxes_used else 0.0,
        "proposal_recall": proposal_recall(found, RECALL_IOU) if found else None,
        "upper_bound": {str(f): r for f, r in upper_bound_miou(masks, num_classes).items()},
        "grid": grid,
        "palette": getattr(val, "palette", None),
        "collapsed": collapsed,
    }


def _peak_memory(cfg: ReproduceConfig, checkpoints: list, image: np.ndarray) -> float | None:
    """Peak inference memory (MB) of these checkpoints on one image, in a fresh process."""
    from pixelwise.reproduce.memory import peak_inference_mb

    image = rescale_image(image, cfg.input_scale)
    return peak_inference_mb(checkpoints, image, boxes=proposal_boxes(cfg, image), size=cfg.input_size,
                             batch=cfg.proposal_batch)


def reproduce(cfg: ReproduceConfig, *, log: Callable[[str], None] = print) -> dict:
    """Pretrain (or reuse) the backbone, train and evaluate everything once per seed, write the
    tables and figure into ``cfg.out``; return the results (the first seed's at the top level,
    every seed's metrics under ``by_seed``, the claim checks under ``claims``)."""

    if not cfg.seeds:
        raise PixelwiseError("reproduce needs at least one seed")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    backbone = backbone_for(cfg, log)
    seconds = {"pretrain": time.perf_counter() - start}
    by_seed: dict[int, dict] = {}
    for seed in cfg.seeds:
        begin = time.perf_counter()
        checkpoints = train_all(cfg, seed, out / f"seed{seed}" / "train", backbone, log, only=cfg.models)
        trained = time.perf_counter() - begin
        log(f"seed {seed}: evaluating")
        by_seed[seed] = evaluate_all(cfg, checkpoints, log, memory=seed == cfg.seeds[0])
        by_seed[seed]["seconds"] = {"train": trained, "total": time.perf_counter() - begin}
    seconds["total"] = time.perf_counter() - start
    results = dict(by_seed[cfg.seeds[0]])
    results["by_seed"] = {str(seed): {"models": _metrics(r["models"]), "seconds": r["seconds"]}
                          for seed, r in by_seed.items()}
    seed_models = {seed: r["models"] for seed, r in by_seed.items()}
    results["config"] = cfg.to_dict()
    results["backbone"] = backbone
    results["seconds"] = seconds
    if cfg.dataset == "camvid":
        results["claims"] = camvid_checks(seed_models, results["class_names"])
        write_report(results, out, extra=camvid_sections(results))
    else:
        results["claims"] = claim_checks(seed_models)
        write_report(results, out)
    (out / "results.json").write_text(
        json.dumps({k: v for k, v in results.items() if k not in ("grid", "palette")}, indent=2, default=float)
    )
    return results


def _metrics(models: dict) -> dict:
    """The metrics of every model without the bulky confusion matrices."""
    return {name: {k: v for k, v in m.items() if k != "confusion"} for name, m in models.items()}
