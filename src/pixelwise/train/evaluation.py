"""Evaluate a checkpoint on a dataset split and write the results (``pixelwise eval``).

Modes:

- ``whole``: every image at its native size (FCN), DeconvNet through ``forward_any_size`` (padded
  to a valid size, cropped back); images batched when they share a size, else padded.
- ``proposals``: DeconvNet / EDeconvNet through the proposal pipeline of
  :func:`pixelwise.inference.segment` (crops of object proposals, aggregated in image space).

Outputs in ``out``: ``results.json`` (the four metrics, per-class IU and accuracy, size-bucket IU
when the dataset has size maps, the confusion matrix, what was evaluated, timing, and
``collapsed``: the line of :func:`pixelwise.train.diagnose.collapse_message` when the model predicts
one class on (nearly) every pixel, else null) and ``confusion.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelwise.checkpoint import load_checkpoint, model_from_checkpoint
from pixelwise.errors import PixelwiseError
from pixelwise.evaluator import evaluate_samples
from pixelwise.inference.options import ProposalOptions
from pixelwise.metrics import format_size_table, format_table
from pixelwise.train import data as tdata
from pixelwise.train import distributed as dist_utils
from pixelwise.train.config import TrainConfig
from pixelwise.train.diagnose import collapse_message, display_name
from pixelwise.train.loop import EvalSettings, evaluate
from pixelwise.train.runlog import to_json
from pixelwise.viz.confusion import plot_confusion

MODES = ("whole", "proposals")


def eval_config(ckpt: dict, *, dataset: str | None, data_root: str | None, data_options: dict | None,
                split: str | None, limit: int | None) -> TrainConfig:
    """Return a config describing the evaluation data: the checkpoint's training config (if any)
    with the given dataset options on top."""
    saved = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    base = TrainConfig().to_dict()
    base.update({k: v for k, v in saved.items() if k in base})
    if dataset is not None and dataset != base["dataset"]:
        base["data_options"] = {}
        base["data_root"] = None
    if dataset is not None:
        base["dataset"] = dataset
    if data_root is not None:
        base["data_root"] = data_root
    if data_options:
        base["data_options"] = {**base["data_options"], **data_options}
    base["val_split"] = split if split is not None else (base["val_split"] or "val")
    base["val_limit"] = limit
    base["cache_data"] = False
    return TrainConfig.from_dict(base, source="eval options")


def evaluate_proposals(model: torch.nn.Module, dataset, num_classes: int, *, proposals: ProposalOptions,
                       device: torch.device, precision: str, progress: bool, rank: int = 0,
                       world_size: int = 1) -> dict:
    """Evaluate with the DeconvNet proposal pipeline (:func:`pixelwise.inference.segment` with
    ``proposals``), image by image; returns the same keys as :func:`pixelwise.train.loop.evaluate`
    plus ``mean_boxes`` (boxes used per image, this process)."""
    from pixelwise.inference import DenseOptions, segment

    base = dataset.base
    indices = list(range(rank, len(base), world_size))
    dense = DenseOptions(precision=precision)
    boxes_used = 0

    def predict(sample: dict) -> np.ndarray:
        nonlocal boxes_used
        info: dict = {}
        probs = segment(model, sample["image"], dense=dense, proposals=proposals.for_image(sample=sample), info=info)
        boxes_used += int(info.get("boxes", 0))
        return np.asarray(probs)

    results = evaluate_samples((base[i] for i in indices), predict, num_classes, device=device, progress=progress,
                               desc="eval (proposals)", total=len(indices), boundary=True)
    if indices and boxes_used == 0:
        # the paper's 112-px minimum drops every box of a small image; say so instead of silently
        # reporting the whole-image pass as the proposal pipeline
        print(f"pixelwise eval: warning: no proposal survived the box rules on any image (--min-box "
              f"{proposals.min_box:g} px); the scores come from the --uncovered fill alone. "
              "For small images use --min-box-frac, e.g. 0.15", file=sys.stderr)
    results["mean_boxes"] = boxes_used / max(1, len(indices))
    return results


def proposal_record(proposals: ProposalOptions) -> dict:
    """Return what ``results.json`` records of a proposal evaluation: the method and its rules."""
    return {"proposals": proposals.method, "uncovered": proposals.uncovered, "top_k": proposals.top_k,
            "min_box": proposals.min_box, "min_box_frac": proposals.min_box_frac,
            "aggregate": proposals.aggregate, "pad": proposals.pad}


def run_eval(
    checkpoint: str,
    *,
    dataset: str | None = None,
    data_root: str | None = None,
    data_options: dict | None = None,
    split: str | None = None,
    limit: int | None = None,
    batch_size: int = 1,
    resize: int | None = None,
    mode: str = "whole",
    proposals: ProposalOptions | None = None,
    device: str = "auto",
    precision: str = "fp32",
    threads: int = 0,
    out: str | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate ``checkpoint`` and write ``results.json`` + ``confusion.png`` into ``out`` (default:
    ``<checkpoint folder>/eval-<split>``) on rank 0. Returns the results dict (with ``out``).
    ``proposals``: the pipeline of ``mode="proposals"`` (default: selective search, the paper's rules)."""
    proposals = proposals or ProposalOptions(method="selective-search")
    if mode not in MODES:
        raise PixelwiseError(f"unknown --mode {mode!r}; valid: {', '.join(MODES)}")
    info = dist_utils.init_distributed(device)
    local_world = info.world_size if info.distributed else 1
    torch.set_num_threads(threads or dist_utils.default_threads(local_world))
    ckpt = load_checkpoint(checkpoint)
    model = model_from_checkpoint(ckpt, source=str(checkpoint)).eval().to(info.device)
    cfg = eval_config(ckpt, dataset=dataset, data_root=data_root, data_options=data_options, split=split,
                      limit=limit).replace(input_scale=model.input_scale)  # the model's own, whatever trained it
    ds = tdata.val_dataset(cfg, convention=model.input_convention)  # the weights decide the normalisation
    num_classes = int(ckpt["model_spec"]["num_classes"])
    if ds.num_classes > num_classes:
        raise PixelwiseError(
            f"{checkpoint}: model has {num_classes} classes but dataset {cfg.dataset!r} has {ds.num_classes}"
        )
    class_names = ckpt.get("class_names") or list(ds.class_names)
    show = progress and info.is_main
    if mode == "proposals":
        if model.family == "fcn":
            raise PixelwiseError("--mode proposals needs a DeconvNet or EDeconvNet checkpoint; FCN uses --mode whole")
        results = evaluate_proposals(model, ds, num_classes, proposals=proposals, device=info.device,
                                     precision=precision, progress=show, rank=info.rank, world_size=info.world_size)
    else:
        loader = tdata.eval_loader(ds, batch_size, rank=info.rank, world_size=info.world_size)
        settings = EvalSettings(device=info.device, precision=precision, resize=resize, boundary=True, progress=show)
        results = evaluate(model, loader, num_classes, settings, desc=f"eval {ckpt['model_spec']['name']}")
    results.update({
        "checkpoint": str(checkpoint),
        "model": ckpt["model_spec"]["name"],
        "dataset": cfg.dataset,
        "split": cfg.val_split,
        "mode": mode,
        **(proposal_record(proposals) if mode == "proposals" else {}),
        "resize": resize,
        "input_scale": model.input_scale,
        "class_names": list(class_names),
        "world_size": info.world_size,
    })
    results["collapsed"] = collapse_message(results["confusion"], class_names, model=display_name(results["model"]),
                                            where=f"eval on {cfg.dataset} {cfg.val_split}")
    out_dir = Path(out) if out else Path(checkpoint).resolve().parent / f"eval-{cfg.val_split}"
    results["out"] = str(out_dir)
    if info.is_main:
        write_results(results, out_dir, class_names)
    return results


def write_results(results: dict, out_dir: Path, class_names: list[str]) -> None:
    """Write ``results.json`` and ``confusion.png`` into ``out_dir`` (a path that cannot be written
    raises :class:`pixelwise.fileio.WriteError`)."""
    from pixelwise.fileio import ensure_writable_dir, writing

    ensure_writable_dir(out_dir)
    with writing(out_dir / "results.json"):
        (out_dir / "results.json").write_text(to_json(results, indent=1), encoding="utf-8")
    plot_confusion(results["confusion"], out_dir / "confusion.png", class_names,
                   title=f"{results.get('model', '')} on {results.get('dataset', '')} {results.get('split', '')}")


def results_text(results: dict[str, Any]) -> str:
    """Return the printed report: the metrics table, per-class IU and size buckets."""
    text = format_table(results, results.get("class_names"))
    if "size_buckets" in results:
        text += "\n\nIU by object size\n" + format_size_table(results["size_buckets"])
    return text
