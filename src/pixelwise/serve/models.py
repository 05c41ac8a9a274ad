"""The models ``pixelwise serve`` offers: checkpoints, EDeconvNet pairs, or the demo's models.

Sources, in the order the page lists them:

- ``checkpoints``: pixelwise checkpoints (``.pt``), exported ``.onnx`` files, or training run
  folders (their ``best.pt``, else ``last.pt``);
- ``pairs``: ``(fcn8s, deconvnet)`` checkpoint pairs, each served as one EDeconvNet (built the way
  ``pixelwise predict --fcn --deconvnet`` builds it);
- ``demo_dir``: the output folder of ``pixelwise demo``: its ``fcn8s/`` and ``deconvnet/`` runs
  and, when both are there, their EDeconvNet (mean, the paper's combination).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from torch import nn

from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.models.base import Family

if TYPE_CHECKING:
    from pixelwise.optimize import PreparedModel

DEFAULT_DEMO_DIR = "demo-out"
"""Where ``pixelwise demo`` writes by default, and where ``pixelwise serve`` looks without models."""

RUN_FILES = ("best.pt", "last.pt")
"""Checkpoint files looked for in a training run folder, in order of preference."""

DISPLAY_NAMES = {
    "fcn32s": "FCN-32s",
    "fcn16s": "FCN-16s",
    "fcn8s": "FCN-8s",
    "fcn8s_atonce": "FCN-8s at-once",
    "deconvnet": "DeconvNet",
    "edeconvnet": "EDeconvNet",
}

PAPER_PROPOSALS = {"top_k": 50, "min_box_frac": None}
"""The paper's proposal rules (top 50 boxes, sides >= 112 px) for DeconvNets on 224-px crops."""

SMALL_PROPOSALS = {"top_k": 20, "min_box_frac": 0.15}
"""The demo's rules (top 20, sides >= 15 % of the shorter image side) for DeconvNets built for smaller
crops (``input_size`` < 224), whose images are too small for 112-px boxes."""


@dataclass
class ServedModel:
    """One model the page offers: its label, the model ready for :func:`pixelwise.inference.segment`
    (eval mode, on its device), what kind it is and its class names."""

    label: str
    model: nn.Module
    kind: Family  # the model's family
    class_names: list[str]
    source: str
    proposal_defaults: dict = field(default_factory=lambda: dict(PAPER_PROPOSALS))

    @property
    def uses_proposals(self) -> bool:
        """Whether the model runs on proposal boxes (DeconvNet and EDeconvNet)."""
        return self.kind in (Family.DECONVNET, Family.ENSEMBLE)


def run_checkpoint(path: str | Path) -> Path:
    """Return the checkpoint file ``path`` names: the file itself, or a run folder's ``best.pt`` /
    ``last.pt``; a one-line :class:`CheckpointError` when there is none."""
    path = Path(path)
    if path.is_dir():
        found = _run_file(path)
        if found is None:
            raise CheckpointError(f"{path}: folder holds no checkpoint ({' or '.join(RUN_FILES)})")
        return found
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    return path


def find_demo_checkpoints(demo_dir: str | Path) -> dict[str, Path]:
    """Return ``{"fcn8s": path, "deconvnet": path}`` for the runs ``pixelwise demo`` left in
    ``demo_dir`` (each ``best.pt``, else ``last.pt``); runs that are missing are left out."""
    found = {run: _run_file(Path(demo_dir) / run) for run in ("fcn8s", "deconvnet")}
    return {run: path for run, path in found.items() if path is not None}


def _run_file(folder: Path) -> Path | None:
    """A training run folder's ``best.pt``, else its ``last.pt``, else None."""
    return next((folder / name for name in RUN_FILES if (folder / name).is_file()), None)


def _load(device, engine: str, **sources) -> PreparedModel:
    """The model ``sources`` name (``checkpoint=``, or ``fcn=`` and ``deconvnet=`` with
    ``ensemble_mode=``) as ``pixelwise predict`` loads it, run by ``engine``."""
    from pixelwise.inference.loading import ModelRequest, load_inference_model

    return load_inference_model(ModelRequest(device=device, engine=engine, precision="fp32", **sources))


def _served(model: PreparedModel, label: str, source: str) -> ServedModel:
    from pixelwise.inference.pipeline import proposal_size
    from pixelwise.inference.summary import class_names_of

    kind = model.family
    num_classes = int(model.num_classes or 0)
    if not num_classes:
        raise CheckpointError(f"{source}: the model does not say how many classes it has")
    defaults = dict(PAPER_PROPOSALS)
    if kind in (Family.DECONVNET, Family.ENSEMBLE):
        deconv = model.deconvnet if kind == Family.ENSEMBLE else model
        if proposal_size(deconv) < 224:
            defaults = dict(SMALL_PROPOSALS)
    return ServedModel(label=label, model=model, kind=kind, class_names=class_names_of(model, num_classes),
                       source=source, proposal_defaults=defaults)


def _label(model: PreparedModel, source: str) -> str:
    name = (model.pixelwise_spec or {}).get("name", type(model).__name__)
    return f"{DISPLAY_NAMES.get(name, name)} · {source}"


def load_checkpoint_model(path: str | Path, device, engine: str = "auto") -> ServedModel:
    """Load one checkpoint (``.pt``, ``.onnx`` or a run folder) as a :class:`ServedModel` run by
    ``engine`` (``int8``: the engine ``pixelwise export --int8`` made for it)."""
    file = run_checkpoint(path)
    model = _load(device, engine, checkpoint=str(file))
    return _served(model, _label(model, str(file)), str(file))


def load_pair(fcn: str | Path, deconvnet: str | Path, device, *, mode: str = "mean", engine: str = "auto") -> ServedModel:
    """Load an FCN-8s and a DeconvNet checkpoint (files or run folders) as one EDeconvNet, each
    member run by ``engine``."""
    fcn_file, deconv_file = run_checkpoint(fcn), run_checkpoint(deconvnet)
    model = _load(device, engine, fcn=str(fcn_file), deconvnet=str(deconv_file), ensemble_mode=mode)
    source = f"{fcn_file} + {deconv_file}"
    return _served(model, f"EDeconvNet ({mode}) · {source}", source)


def load_served_models(
    checkpoints: Sequence[str | Path] = (),
    pairs: Sequence[tuple[str | Path, str | Path]] = (),
    demo_dir: str | Path | None = None,
    *,
    device: str = "auto",
    mode: str = "mean",
    engine: str = "auto",
) -> list[ServedModel]:
    """Load every model to serve (see the module docstring); ``demo_dir`` None means
    :data:`DEFAULT_DEMO_DIR`, looked in only when no checkpoint or pair is given. ``mode`` is the
    EDeconvNet combination (``mean`` or ``product``), ``engine`` the inference engine of every
    model (:data:`pixelwise.optimize.ENGINES`). Raises a one-line :class:`PixelwiseError` when
    nothing can be served."""
    from pixelwise.runtime import resolve_device

    dev = resolve_device(device)
    served = [load_checkpoint_model(path, dev, engine) for path in checkpoints]
    served += [load_pair(fcn, deconv, dev, mode=mode, engine=engine) for fcn, deconv in pairs]
    if demo_dir is not None or not served:
        folder = Path(demo_dir if demo_dir is not None else DEFAULT_DEMO_DIR)
        found = find_demo_checkpoints(folder)
        if not found:
            hint = ("give --checkpoint CKPT [CKPT ...], or --fcn CKPT --deconvnet CKPT, or train the demo models "
                    f"first: pixelwise demo --out {folder}")
            raise PixelwiseError(f"no models to serve: {folder}/ holds no fcn8s/ or deconvnet/ checkpoint; {hint}")
        served += [load_checkpoint_model(path, dev, engine) for path in found.values()]
        if len(found) == 2:
            served.append(load_pair(found["fcn8s"], found["deconvnet"], dev, mode=mode, engine=engine))
    unique: dict[tuple[str, str], ServedModel] = {}
    for entry in served:  # the same model named twice (a pair that is also the demo's) is served once
        unique.setdefault((entry.label, entry.source), entry)
    served = list(unique.values())
    labels: dict[str, int] = {}
    for entry in served:  # the dropdown needs distinct labels
        labels[entry.label] = labels.get(entry.label, 0) + 1
        if labels[entry.label] > 1:
            entry.label = f"{entry.label} ({labels[entry.label]})"
    return served
