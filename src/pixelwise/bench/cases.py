"""Benchmark cases: what to run (model, size, batch, kind) and how to build each workload.

Kinds:

- ``infer``: one forward pass of a ``(batch, 3, H, W)`` input.
- ``proposals``: a full ``H x W`` image with ``batch`` proposal boxes through the proposal
  pipeline (crop, resize to 224, network on batches of 8, resize back, max-aggregate). The
  reference runs the proposals one at a time (the obvious way), the engines batch them.
- ``train``: one SGD step (forward, summed cross-entropy, backward, update) on ``(batch, 3, H, W)``.
- ``tiled``: one ``H x W`` image through sliding-window inference with ``tile``-pixel tiles
  (memory case: FCN-8s at 2048x2048 must stay under 3 GB peak RSS).

Models are built with a fixed seed and "randomised" (score layers and batch-norm statistics
drawn at random instead of the zero/identity initialisation), so outputs are non-trivial and the
engines' errors against the reference are meaningful.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import pixelwise
from pixelwise.models.base import SegmentationModel
from pixelwise.models.flops import count_flops
from pixelwise.models.registry import get_entry
from pixelwise.optimize import ENGINES as OPTIMIZE_ENGINES

KINDS = ("infer", "proposals", "train", "tiled")
INPUT_SCALE = 60.0  # inputs ~ N(0, 60^2): the spread of mean-subtracted 0..255 pixels
IMAGE_SIZE = (375, 500)  # a typical VOC image (H, W) for the proposal pipeline
PROPOSAL_BATCH = 8


@dataclass(frozen=True)
class Case:
    """One benchmark workload; ``batch`` is images per call, or proposals for ``proposals``."""

    kind: str
    model: str
    height: int
    width: int
    batch: int = 1
    model_width: float = 1.0
    num_classes: int = 21
    warmup: int = 1
    repeats: int = 3
    tile: int = 512
    seed: int = 0
    ref: bool = True  # time the plain reference side by side (False: skip it, to save time)

    def label(self) -> str:
        """Return a short human label, e.g. ``infer fcn8s 500x500 x1``."""
        size = f"{self.height}x{self.width}"
        if self.kind == "proposals":
            return f"proposals {self.model} {size} image, {self.batch} proposals"
        if self.kind == "tiled":
            return f"tiled {self.model} {size} (tiles {self.tile})"
        return f"{self.kind} {self.model} {size} x{self.batch}"

    def to_dict(self) -> dict:
        """Return a JSON-ready dict (inverse: :meth:`from_dict`)."""
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Case":
        """Rebuild a case from :meth:`to_dict`."""
        return Case(**d)


def randomise(model: SegmentationModel, seed: int) -> SegmentationModel:
    """Give the zero-initialised score layers (``model.score_layers``) and identity batch norms
    random values, in place; returns ``model``."""
    gen = torch.Generator().manual_seed(seed)
    scores = set(model.score_layers)
    with torch.no_grad():
        for name, m in model.named_modules():  # one pass in module order: the draws stay in that order
            if name in scores:
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * fan_in**-0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
    return model


def build_model(case: Case) -> nn.Module:
    """Return the case's model, deterministic for ``case.seed``, randomised, in eval mode."""
    torch.manual_seed(case.seed)
    model = pixelwise.create_model(case.model, num_classes=case.num_classes, width=case.model_width)
    return randomise(model, case.seed).eval()


def family(case: Case) -> str:
    """Return the registry family of the case's model (fcn, deconvnet, ensemble)."""
    return get_entry(case.model).family


def make_input(case: Case) -> torch.Tensor:
    """Return the case's input: ``(batch, 3, H, W)`` (``(3, H, W)`` for ``proposals``)."""
    gen = torch.Generator().manual_seed(case.seed + 1)
    if case.kind == "proposals":
        return torch.randn(3, case.height, case.width, generator=gen) * INPUT_SCALE
    n = 1 if case.kind == "tiled" else case.batch
    return torch.randn(n, 3, case.height, case.width, generator=gen) * INPUT_SCALE


def case_gflop(case: Case) -> float:
    """Return the network GFLOP of one call of the case (2 x multiply-adds), counted on meta.

    ``proposals``: the network on ``batch`` 224x224 crops; ``tiled``: the sum over the tiles;
    ``train``: forward + backward as traced by torch's FLOP counter (``count_flops`` counts
    forwards only).
    """
    from pixelwise.bench.pipeline import PROPOSAL_SIZE, tile_grid

    with torch.device("meta"):
        model = pixelwise.create_model(case.model, num_classes=case.num_classes, width=case.model_width)
    if case.kind == "proposals":
        member = model.deconvnet if model.family == "ensemble" else model
        flop = count_flops(member.eval(), PROPOSAL_SIZE, PROPOSAL_SIZE, batch=case.batch)
        if model.family == "ensemble":  # + FCN-8s on the whole image
            flop += count_flops(model.fcn.eval(), case.height, case.width)
        return flop / 1e9
    if case.kind == "tiled":
        return sum(count_flops(model.eval(), h, w) for h, w in tile_grid(case.height, case.width, case.tile)) / 1e9
    if case.kind == "train":
        return train_flop(model, case) / 1e9
    return count_flops(model.eval(), case.height, case.width, batch=case.batch) / 1e9


def train_flop(meta_model: nn.Module, case: Case) -> int:
    """Return forward+backward FLOPs of one training step, traced on the meta device."""
    model = meta_model.train()
    x = torch.empty(case.batch, 3, case.height, case.width, device="meta")
    target = torch.zeros(case.batch, case.height, case.width, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        loss = F.cross_entropy(model(x), target, ignore_index=255, reduction="sum")
        loss.backward()
    return int(counter.get_total_flops())


# ----------------------------------------------------------------------------- workloads
PREPARED_ENGINES = tuple(e for e in OPTIMIZE_ENGINES if e != "auto")
"""The engines of :func:`pixelwise.optimize.prepare_for_inference` a benchmark names one by one."""
TRAIN_ENGINES = ("reference", *(e for e in PREPARED_ENGINES if e not in ("onnxruntime", "int8")))
CALIBRATION_INPUTS = 2
"""Random inputs an ``int8`` row is calibrated on (drawn like the case's input, other seeds)."""


def engine_precision(engine: str) -> str:
    """Return the arithmetic precision an engine computes in (its peak is measured in it)."""
    return {"bf16": "bf16", "int8": "int8", "cuda": "cuda_bf16"}.get(engine, "fp32")


def int8_calibration(case: Case):
    """Return the calibration of a case's ``int8`` row: :data:`CALIBRATION_INPUTS` random inputs
    of the network's input size (the crop side for proposals, the tile for tiled cases), drawn as
    :func:`make_input` draws the case's input (the benchmark's models are random: so are its
    images)."""
    from pixelwise.bench.pipeline import PROPOSAL_SIZE
    from pixelwise.fast.int8 import Calibration

    side = {"proposals": (PROPOSAL_SIZE, PROPOSAL_SIZE), "tiled": (case.tile, case.tile)}
    height, width = side.get(case.kind, (case.height, case.width))
    gen = torch.Generator().manual_seed(case.seed + 100)
    inputs = [torch.randn(1, 3, height, width, generator=gen) * INPUT_SCALE for _ in range(CALIBRATION_INPUTS)]
    return Calibration.from_batches(inputs, source=f"{CALIBRATION_INPUTS} random {height}x{width} inputs")


def inference_callable(model: nn.Module, engine: str, *, threads: int | None = None, calibration=None) -> Callable:
    """Return ``(N,3,H,W) -> (N,C,H,W)`` for ``engine`` (``reference``: the plain reference model
    carrying ``model``'s weights; ``torchfcn``: pytorch-fcn's FCN8s carrying them; ``int8``:
    quantized on ``calibration``). ``model`` may be rewritten in place (it is not reused)."""
    from pixelwise.bench.reference import build_reference
    from pixelwise.optimize import prepare_for_inference

    if engine == "reference":
        return ReferenceRunner(build_reference(model), model.num_classes)
    if engine == "torchfcn":  # the peer, run as its users run it: plain eager under no_grad
        from pixelwise.bench.peer import torchfcn_fcn8s

        return ReferenceRunner(torchfcn_fcn8s(model), model.num_classes)
    device = "cuda" if engine == "cuda" else "cpu"
    return prepare_for_inference(model, engine=engine, device=device, copy=False, threads=threads,
                                 calibration=calibration)


class ReferenceRunner:
    """Calls a reference (or peer) module under ``no_grad``; exposes an ensemble's members the same way."""

    def __init__(self, module: nn.Module, num_classes: int) -> None:
        self.module = module
        self.num_classes = num_classes

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(x)

    @property
    def fcn(self) -> "ReferenceRunner":
        return ReferenceRunner(self.module.fcn, self.num_classes)

    @property
    def deconvnet(self) -> "ReferenceRunner":
        return ReferenceRunner(self.module.deconvnet, self.num_classes)


def inference_step(case: Case, forward: Callable, engine: str) -> Callable[[], torch.Tensor]:
    """Return a zero-argument callable running the case once and returning its scores."""
    from pixelwise.bench.pipeline import run_proposals, run_tiled, synthetic_boxes

    x = make_input(case)
    cuda = engine == "cuda"
    if cuda:
        x = x.cuda()

    def sync(out):
        if cuda:
            torch.cuda.synchronize()
        return out

    if case.kind == "infer":
        return lambda: sync(forward(x))
    if case.kind == "tiled":
        # an engine pads to a valid size; a reference runner (foreign, no such method) takes any size
        any_size = getattr(forward, "forward_any_size", forward)
        return lambda: sync(run_tiled(any_size, x, tile=case.tile))
    if case.kind == "proposals":
        boxes = synthetic_boxes(case.height, case.width, case.batch, seed=case.seed)
        batch = 1 if engine == "reference" else PROPOSAL_BATCH
        if family(case) == "ensemble":
            fcn, deconv = forward_members(forward)

            def ensemble_step():
                from pixelwise.models.ensemble import combine_scores

                d = run_proposals(deconv, x, boxes, batch=batch)
                return sync(combine_scores(fcn(x[None]), d[None], "mean"))

            return ensemble_step
        return lambda: sync(run_proposals(forward, x, boxes, batch=batch))
    raise ValueError(f"not an inference kind: {case.kind}")


def forward_members(forward) -> tuple[Callable, Callable]:
    """Return ``(fcn, deconvnet)`` callables of a prepared or reference ensemble."""
    inner = getattr(forward, "fcn", None)  # a prepared engine or a reference runner (foreign): either may lack it
    if inner is not None:
        return forward.fcn, forward.deconvnet
    raise ValueError("not an ensemble engine")


def train_step(case: Case, model: nn.Module, engine: str) -> Callable[[], float]:
    """Return a zero-argument callable doing one SGD step for ``engine``; it returns the loss.

    The heavy recipe's step: summed cross-entropy (label 255 ignored), SGD momentum 0.99, weight
    decay 5e-4. ``bf16`` = channels_last + bf16 autocast (fp32 master weights); ``cuda`` = the
    same on the GPU.
    """
    from pixelwise.bench.reference import build_reference

    if engine not in TRAIN_ENGINES:
        raise ValueError(f"engine {engine} does not train")
    net = build_reference(model) if engine == "reference" else model
    device = torch.device("cuda" if engine == "cuda" else "cpu")
    channels_last = engine in ("channels_last", "bf16", "cuda")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(device=device, memory_format=fmt).train()
    x = make_input(case).to(device=device, memory_format=fmt)
    gen = torch.Generator().manual_seed(case.seed + 2)
    target = torch.randint(0, case.num_classes, (case.batch, case.height, case.width), generator=gen).to(device)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-10, momentum=0.99, weight_decay=5e-4)
    amp = engine in ("bf16", "cuda")

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
        with ctx:
            logits = net(x)
        loss = F.cross_entropy(logits.float(), target, ignore_index=255, reduction="sum")
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return float(loss.detach())

    return step
