"""Running a configured training: one run, a resumed run, or several stages in a row.

``stages`` lists ``model[:sampling]`` entries, e.g. ``fcn32s,fcn16s,fcn8s`` (FCN staged training:
each stage starts from the previous stage's ``last.pt`` via ``init_from``, new skip scorers at
zero) or ``deconvnet:objects,deconvnet:proposals`` (DeconvNet's two stages). Each stage has its
own subfolder of ``out`` (``fcn32s/``, ``deconvnet_objects/`` ...) with its own checkpoints and
log, and its config is resolved afresh, so the recipe's per-model and per-stage values (heavy
learning rates, DeconvNet schedules) apply to each stage automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pixelwise.errors import PixelwiseError
from pixelwise.train.checkpointing import load_training_checkpoint
from pixelwise.train.config import SAMPLINGS, TrainConfig
from pixelwise.train.console import say
from pixelwise.train.recipes import resolve_config
from pixelwise.train.trainer import RunResult, fit


def parse_stage(spec: str) -> tuple[str, str | None]:
    """Return ``(model, sampling or None)`` of a stage entry ``model[:sampling]``."""
    model, _, sampling = spec.partition(":")
    if not model:
        raise PixelwiseError(f"--stages: empty stage in {spec!r}; write e.g. fcn32s,fcn16s,fcn8s")
    if sampling and sampling not in SAMPLINGS:
        raise PixelwiseError(f"--stages: {spec!r} has sampling {sampling!r}; valid: {', '.join(SAMPLINGS)}")
    return model, sampling or None


def stage_dirs(stages: list[str]) -> list[str]:
    """Return the subfolder name of each stage (``deconvnet:objects`` -> ``deconvnet_objects``;
    repeated entries get a numeric suffix)."""
    names: list[str] = []
    for spec in stages:
        base = spec.replace(":", "_")
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


@dataclass(frozen=True)
class Stage:
    """One training of a staged run: its subfolder ``name``, its own options (on top of the run's
    shared ones) and the earlier stage whose ``last.pt`` initialises it (``start_from``)."""

    name: str
    options: dict
    start_from: str | None = None


def stages_from_spec(overrides: dict, cfg: TrainConfig) -> list[Stage]:
    """Return the stages of ``cfg.stages`` (``model[:sampling]`` entries): each the user's options
    with the stage's model and sampling, each starting from the one before."""
    stages: list[Stage] = []
    for spec, name in zip(cfg.stages, stage_dirs(cfg.stages)):
        model, sampling = parse_stage(spec)
        options = {**overrides, "model": model}
        if cfg.recipe and "recipe" not in options:
            options["recipe"] = cfg.recipe
        if sampling:
            options["sampling"] = sampling
        stages.append(Stage(name, options, stages[-1].name if stages else None))
    return stages


def stage_options(stages: list[Stage], root: str | Path, shared: dict | None = None) -> list[dict]:
    """Return each stage's options: ``shared``, then the stage's own, its folder ``root/name`` and,
    for a stage that starts from another, ``init_from`` that stage's ``last.pt``."""
    root = Path(root)
    plans = []
    for stage in stages:
        options = {**(shared or {}), **stage.options, "stages": [], "out": str(root / stage.name)}
        if stage.start_from is not None:
            options["init_from"] = str(root / stage.start_from / "last.pt")
        plans.append(options)
    return plans


def run_stages(stages: list[Stage], root: str | Path, shared: dict | None = None, *, resume: str | None = None,
               on_step: Callable[[int, float], bool | None] | None = None,
               log: Callable[[str], None] = say) -> dict[str, RunResult]:
    """Train ``stages`` in order, each in ``root/<name>`` (see :func:`stage_options`); return
    ``{name: RunResult}``. ``resume="auto"`` continues (or keeps) each stage's own ``last.pt``. An
    interrupted stage ends the sequence. The one launcher of ``train --stages``, ``demo`` and
    ``reproduce``."""
    results: dict[str, RunResult] = {}
    for i, (stage, options) in enumerate(zip(stages, stage_options(stages, root, shared)), start=1):
        cfg = resolve_config(options, source=f"stage {stage.name}")
        log(f"stage {i}/{len(stages)}: {stage.name} -> {cfg.out} (lr {cfg.lr:g}, {cfg.steps} steps)")
        result = run_one(cfg, options, resume=resume, on_step=on_step)
        log(f"trained {stage.name} in {result.seconds:.0f} s")
        results[stage.name] = result
        if result.status != "finished":
            break
    return results


def _resume_checkpoint(cfg: TrainConfig, resume: str) -> tuple[Path, dict | None]:
    """Return the checkpoint path ``resume`` names (``auto``: ``out/last.pt``) and the loaded
    checkpoint (None when ``auto`` finds no file yet)."""
    path = Path(cfg.out) / "last.pt" if resume == "auto" else Path(resume)
    if resume == "auto" and not path.is_file():
        say(f"--resume auto: no {path} yet, starting a new run")
        return path, None
    return path, load_training_checkpoint(path)


def run_one(cfg: TrainConfig, overrides: dict, *, resume: str | None = None,
            on_step: Callable[[int, float], bool | None] | None = None) -> RunResult:
    """Run one training and return its :class:`RunResult`; ``resume`` is None, ``auto``
    (``out/last.pt`` if it exists) or a path (see :func:`resume_run`)."""
    if not resume:
        return fit(cfg, on_step=on_step)
    path, ckpt = _resume_checkpoint(cfg, resume)
    if ckpt is None:
        return fit(cfg, on_step=on_step)
    return resume_run(ckpt, path, overrides, on_step=on_step)


def resumed_config(saved: dict, overrides: dict, path: str | Path) -> tuple[TrainConfig, list[str]]:
    """Return the config of a resumed run, the checkpoint's ``saved`` config with ``overrides`` (the
    options given now, e.g. a larger ``steps``) on top, and the names of the options that changed.
    A ``median-freq`` request keeps the weights the checkpoint computed when its run started."""
    if overrides.get("class_weights") == "median-freq" and saved.get("class_weights") not in (None, "median-freq"):
        overrides = {k: v for k, v in overrides.items() if k != "class_weights"}
    changed = sorted(k for k, v in overrides.items() if k in saved and saved[k] != v)
    return TrainConfig.from_dict({**saved, **overrides}, source=f"{path} + options"), changed


def resume_run(ckpt: dict, path: str | Path, overrides: dict, *,
               on_step: Callable[[int, float], bool | None] | None = None) -> RunResult:
    """Continue the run of the loaded checkpoint ``ckpt`` (read from ``path``) with ``overrides`` on
    its config (:func:`resumed_config`); return its :class:`RunResult`."""
    cfg, changed = resumed_config(dict(ckpt["config"]), overrides, path)
    if changed:
        say(f"options changed from the checkpoint's config: {', '.join(changed)}")
    return fit(cfg, resume=ckpt, resume_source=str(path), on_step=on_step)


def launch(overrides: dict, *, resume: str | None = None,
           on_step: Callable[[int, float], bool | None] | None = None) -> list[RunResult]:
    """Resolve ``overrides`` (YAML options merged with flags) into configs and train; return one
    :class:`RunResult` per stage (one for a plain run). An interrupted stage ends the sequence."""
    if resume and resume != "auto" and not overrides.get("stages"):
        path = Path(resume)  # the checkpoint's config decides the run
        return [resume_run(load_training_checkpoint(path), path, overrides, on_step=on_step)]
    cfg = resolve_config(overrides)
    if not cfg.stages:
        return [run_one(cfg, overrides, resume=resume, on_step=on_step)]
    if resume and resume != "auto":
        raise PixelwiseError("--resume PATH continues one run; with --stages use --resume auto (every stage "
                             "resumes from its own last.pt)")
    return list(run_stages(stages_from_spec(overrides, cfg), cfg.out, resume=resume, on_step=on_step).values())
