"""An int8 engine for one model, calibrated on its own data and checked against fp32.

:func:`build_int8` is what ``pixelwise export --int8`` runs:

1. **calibration**: the network inputs of a few images drawn from the data the model was trained
   on, recorded exactly as :func:`~pixelwise.inference.pipeline.segment` feeds them to the fp32
   engine (normalised, at the model's input scale; DeconvNet's proposal crops): :func:`calibration_set`;
2. the int8 graph (:mod:`pixelwise.fast.int8`), kept in the engine cache;
3. **the accuracy guard**: both engines segment held-out images (other images than the
   calibration's); the share of pixels whose label is the same (*label agreement*) and, where the
   images have ground truth, the mean IU of each: :func:`check_int8`;
4. the verdict, stored with the engine (the engine cache's choice record, the checkpoint's index
   and the written file's metadata): the int8 engine is accepted when the agreement reaches
   ``min_agreement``; otherwise it is refused and the model keeps running in fp32.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from torch import nn

from pixelwise.errors import PixelwiseError
from pixelwise.evaluator import Evaluator
from pixelwise.fast.int8 import INT8_GUARD_META, Calibration, QuantSettings, base_key, save_choice
from pixelwise.inference.options import ProposalOptions
from pixelwise.inference.pipeline import proposal_size, segment
from pixelwise.inference.proposals import selective_search_available
from pixelwise.models.base import Family, ModelInterface
from pixelwise.optimize import PreparedModel, prepare_for_inference

MIN_AGREEMENT = 0.99
"""Default guard: an int8 engine must give the fp32 label on at least 99 % of held-out pixels."""

MAX_INPUTS = 64
"""At most this many network inputs calibrate (evenly spaced among those recorded)."""


def default_proposals(model: ModelInterface, method: str | None = None) -> ProposalOptions:
    """Return the proposals a DeconvNet is calibrated and checked on: ``method`` (default: selective
    search as ``pixelwise predict`` runs it, or sliding windows without OpenCV's contrib modules),
    with the paper's rules (top 50 boxes, sides >= 112 px) for 224-px DeconvNets and the demo's
    (top 20, sides >= 15 % of the shorter image side) for smaller ones. No proposals for other
    families, nor for ``method="none"`` (whole images)."""
    if model.family != Family.DECONVNET or method == "none":
        return ProposalOptions()
    method = method or ("selective-search" if selective_search_available() else "sliding")
    if proposal_size(model) >= 224:
        return ProposalOptions(method=method, top_k=50)
    return ProposalOptions(method=method, top_k=20, min_box_frac=0.15)


@dataclass(frozen=True)
class Samples:
    """Images (sample dicts with ``image`` and, for a dataset, ``mask``) picked for calibration or
    the guard: where they came from (``source``, e.g. ``camvid/val``), which data (``origin``:
    ``(dataset, split)`` or the file list) and which of its items (``indices``)."""

    items: list[dict]
    source: str
    origin: tuple
    indices: tuple[int, ...]


def data_samples(spec: str | None, config: dict, *, default_split: str, count: int, data_root: str | None = None,
                 avoid: Samples | None = None) -> Samples:
    """Return ``count`` samples spread evenly over the data ``spec`` names: ``DATASET/SPLIT``
    (a name of :data:`pixelwise.data.DATASETS`), ``SPLIT`` or None (of the dataset the training
    ``config`` names, None: its ``default_split``), or image files, folders and globs (unlabelled).
    The dataset's root and options come from ``config`` when it is the same dataset (``data_root``
    overrides the root). Items of ``avoid`` (the calibration set) are left out when the data is the
    same, so that the guard runs on held-out images."""
    from pixelwise.data import DATASETS, build_dataset

    name, _, split = (spec or "").partition("/")
    if name not in DATASETS:  # image files, else a split of the training dataset ("val")
        if spec and (Path(spec).exists() or any(c in spec for c in "*?[")):
            return _file_samples(spec, count)
        if split:
            raise PixelwiseError(f"{spec}: no such file or folder, and {name!r} is not a dataset "
                                 f"({', '.join(DATASETS)})")
        name, split = "", name
    dataset = name or config.get("dataset")
    if not dataset:
        raise PixelwiseError("the checkpoint does not say what it was trained on: give DATASET/SPLIT or image "
                             f"files, e.g. synthetic/{default_split}")
    same = dataset == config.get("dataset")
    options = dict(config.get("data_options") or {}) if same else {}
    root = data_root or (config.get("data_root") if same else None)
    split = split or default_split
    data = build_dataset(dataset, root=root, split=split, **options)
    taken = set(avoid.indices) if avoid is not None and avoid.origin == (dataset, split) else set()
    free = [i for i in range(len(data)) if i not in taken]
    if not free:
        raise PixelwiseError(f"{dataset}/{split} holds no image beyond the calibration's; give another split")
    indices = tuple(_evenly(free, count))
    return Samples([data[i] for i in indices], f"{dataset}/{split}", (dataset, split), indices)


def _file_samples(spec: str, count: int) -> Samples:
    from pixelwise.data.io import read_image
    from pixelwise.inference.inputs import expand_inputs

    paths = _evenly(expand_inputs([spec]), count)
    return Samples([{"image": read_image(p), "name": p.name} for p in paths], spec, tuple(map(str, paths)),
                   tuple(range(len(paths))))


class _Recorder(nn.Module):
    """Runs an engine's module and keeps a copy of every input it gets (NCHW float32 arrays)."""

    def __init__(self, inner: nn.Module, sink: list) -> None:
        super().__init__()
        self.inner, self.sink = inner, sink

    def forward(self, x):
        self.sink.append(x.detach().float().contiguous().cpu().numpy())
        return self.inner(x)


def _evenly(items: Sequence, count: int) -> list:
    """``count`` items of ``items`` spread evenly over it (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def calibration_set(fp32: PreparedModel, images: Sequence[np.ndarray], *, proposals: ProposalOptions,
                    source: str, max_inputs: int = MAX_INPUTS) -> Calibration:
    """Return the :class:`Calibration` of ``images`` (RGB uint8): the inputs ``fp32`` gets when
    :func:`segment` runs each image with ``proposals``, one array per crop or image, at most
    ``max_inputs`` of them (evenly spaced)."""
    sink: list = []
    recording = PreparedModel(_Recorder(fp32.inner, sink), engine=fp32.engine, source=fp32, device=fp32.device,
                              channels_last=fp32.channels_last)
    for image in images:
        segment(recording, image, proposals=proposals)
    singles = Calibration.from_batches(sink, source=source, images=len(images)).inputs
    return Calibration(tuple(_evenly(singles, max_inputs)), source, len(images))


@dataclass(frozen=True)
class GuardReport:
    """How an int8 engine's labels compare with fp32's on held-out images: ``agreement`` (share
    of pixels with the same label), the mean IU of each (0..1; None without ground truth), the
    images and where they came from, and the seconds each engine spent in :func:`segment`."""

    agreement: float
    miou_fp32: float | None
    miou_int8: float | None
    images: int
    source: str
    seconds_fp32: float
    seconds_int8: float

    @property
    def miou_change(self) -> float | None:
        """Mean IU of int8 minus fp32, in points (None without ground truth)."""
        if self.miou_fp32 is None or self.miou_int8 is None:
            return None
        return 100 * (self.miou_int8 - self.miou_fp32)

    def to_dict(self) -> dict:
        """Return the report as JSON-ready values (``miou_change`` in points included)."""
        return {**asdict(self), "miou_change": self.miou_change}

    def line(self) -> str:
        """One line: agreement, mean IU of both and their difference (speed is the benchmarks' job:
        the seconds here include each engine's first, slower calls)."""
        text = f"label agreement with fp32 {100 * self.agreement:.2f} % on {self.source} ({self.images} images)"
        if self.miou_change is not None:
            text += (f"; mean IU {100 * self.miou_fp32:.2f} (fp32) -> {100 * self.miou_int8:.2f} (int8), "
                     f"{self.miou_change:+.2f} points")
        return text


def check_int8(fp32: ModelInterface, int8: ModelInterface, samples: Iterable[dict], *, num_classes: int,
               proposals: ProposalOptions, source: str) -> GuardReport:
    """Segment every sample (a dict with ``image`` and, when there is ground truth, ``mask``)
    with both engines; return the :class:`GuardReport`."""
    evaluators = {"fp32": Evaluator(num_classes), "int8": Evaluator(num_classes)}
    seconds = {"fp32": 0.0, "int8": 0.0}
    same = total = images = 0
    labelled = True
    for sample in samples:
        labels = {}
        options = _boxes_once(fp32, sample, proposals)
        for name, model in (("fp32", fp32), ("int8", int8)):
            start = time.perf_counter()
            probs = segment(model, sample["image"], proposals=options)
            seconds[name] += time.perf_counter() - start
            labels[name] = probs.argmax(0)
            if sample.get("mask") is not None:
                evaluators[name].add(labels[name], sample["mask"])
        labelled = labelled and sample.get("mask") is not None
        same += int((labels["fp32"] == labels["int8"]).sum())
        total += labels["fp32"].size
        images += 1
    miou = {name: float(ev.result()["mean_iu"]) if labelled and images else None for name, ev in evaluators.items()}
    return GuardReport(same / max(1, total), miou["fp32"], miou["int8"], images, source,
                       seconds["fp32"], seconds["int8"])


def _boxes_once(model: ModelInterface, sample: dict, proposals: ProposalOptions) -> ProposalOptions:
    """``proposals`` for ``sample`` with its boxes generated once, so that both engines run on the
    very same boxes (generated, as :func:`segment` does, on the image at the model's input scale)."""
    from pixelwise.data.transforms import rescale_image
    from pixelwise.inference.proposals import generate_proposals

    options = proposals.for_image(sample=sample)
    if options.method is None:
        return options
    scale = float(model.input_scale)
    boxes, scores = generate_proposals(rescale_image(sample["image"], scale), options.method,
                                       **options.method_options)
    return replace(options, method=None, method_options={}, boxes=(boxes / np.float32(scale), scores))


@dataclass(frozen=True)
class Int8Result:
    """What :func:`build_int8` did: the verdict, the guard's report, the calibration's record, the
    engine-cache key of the int8 graph and the file written (None when refused or not asked)."""

    accepted: bool
    report: GuardReport
    calibration: dict
    key: str | None
    min_agreement: float
    output: Path | None = None

    def record(self) -> dict:
        """What is stored with the engine (JSON-ready)."""
        return {"key": self.key if self.accepted else None, "accepted": self.accepted,
                "min_agreement": self.min_agreement, "guard": self.report.to_dict(), "calibration": self.calibration}


def build_int8(model: ModelInterface, calibration_images: Sequence[np.ndarray], check_samples: Sequence[dict], *,
               calibration_source: str, check_source: str, proposals: ProposalOptions | None = None,
               min_agreement: float = MIN_AGREEMENT, quant: QuantSettings | None = None,
               output: str | Path | None = None, checkpoint: str | Path | None = None,
               threads: int | None = None) -> Int8Result:
    """Build, check and store the int8 engine of ``model`` (an FCN or a DeconvNet, eval mode; not
    changed): calibrated on ``calibration_images`` (RGB uint8), checked on ``check_samples``
    against its fp32 ``channels_last`` engine, both with ``proposals`` (default
    :func:`default_proposals`). The verdict goes into the engine cache (so that ``--engine int8``
    runs it, or fp32 when refused), the index of ``checkpoint`` (its file, so that a later run
    need not load it) and, when accepted, into ``output``: the portable int8 graph (QDQ, not yet
    optimised for this CPU) with the verdict in its metadata."""
    from pixelwise.fast.engine_cache import remember_checkpoint
    from pixelwise.fileio import atomic_file
    from pixelwise.weights.onnx_export import META_PREFIX, append_metadata

    proposals = proposals if proposals is not None else default_proposals(model)
    fp32 = prepare_for_inference(model, engine="channels_last", copy=True)
    calibration = calibration_set(fp32, calibration_images, proposals=proposals, source=calibration_source)
    with tempfile.TemporaryDirectory(prefix="pixelwise-int8-") as folder:
        portable = Path(folder) / "int8.onnx" if output is not None else None
        int8 = prepare_for_inference(model, engine="int8", calibration=calibration, quant=quant, copy=True,
                                     threads=threads, keep=portable)
        report = check_int8(fp32, int8, check_samples, num_classes=int(model.num_classes), proposals=proposals,
                            source=check_source)
        result = Int8Result(report.agreement >= min_agreement, report, calibration.record(), int8.cache_key,
                            min_agreement)
        if result.accepted and portable is not None:
            append_metadata(portable, {f"{META_PREFIX}{INT8_GUARD_META}": json.dumps(result.record())})
            with atomic_file(output) as tmp:
                shutil.copyfile(portable, tmp)
            result = replace(result, output=Path(output))
    record = result.record()
    save_choice(base_key(model), record)
    if checkpoint is not None:
        remember_checkpoint(checkpoint, record.pop("key"), engine="int8", **record)
    return result
