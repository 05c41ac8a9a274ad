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
from pathlib import Path

from pixelwise.errors import PixelwiseError
from pixelwise.train.checkpointing import load_training_checkpoint
from pixelwise.train.config import SAMPLINGS, TrainConfig
from pixelwise.train.recipes import resolve_config
from pixelwise.train.trainer import RunResult, fit, say


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


def stage_overrides(overrides: dict, cfg: TrainConfig) -> list[dict]:
    """Return the options of each stage of ``cfg.stages`` (the user's options plus the stage's
    model, sampling, subfolder and, from the second stage on, ``init_from`` the previous one)."""
    plans = []
    previous = None
    for spec, name in zip(cfg.stages, stage_dirs(cfg.stages)):
        model, sampling = parse_stage(spec)
        so = {**overrides, "model": model, "stages": [], "out": str(Path(cfg.out) / name)}
        if cfg.recipe and "recipe" not in so:
            so["recipe"] = cfg.recipe
        if sampling:
            so["sampling"] = sampling
        if previous is not None:
            so["init_from"] = str(Path(previous) / "last.pt")
        plans.append(so)
        previous = so["out"]
    return plans


def run_one(cfg: TrainConfig, overrides: dict, *, resume: str | None = None,
            on_step: Callable[[int, float], bool | None] | None = None) -> RunResult:
    """Run one training; ``resume`` is None, ``auto`` (``out/last.pt`` if it exists) or a path.

    When resuming, the checkpoint's config is used, with ``overrides`` (the options given now) on
    top, e.g. a larger ``steps`` to train longer.
    """
    if resume:
        path = Path(cfg.out) / "last.pt" if resume == "auto" else Path(resume)
        if resume == "auto" and not path.is_file():
            say(f"--resume auto: no {path} yet, starting a new run")
            return fit(cfg, on_step=on_step)
        ckpt = load_training_checkpoint(path)
        saved = dict(ckpt["config"])
        if overrides.get("class_weights") == "median-freq" and saved.get("class_weights") not in (None, "median-freq"):
            # the checkpoint's config holds the median-frequency weights computed when the run started
            overrides = {k: v for k, v in overrides.items() if k != "class_weights"}
        changed = sorted(k for k, v in overrides.items() if k in saved and saved[k] != v)
        merged = TrainConfig.from_dict({**saved, **overrides}, source=f"{path} + options")
        if changed:
            say(f"options changed from the checkpoint's config: {', '.join(changed)}")
        return fit(merged, resume=ckpt, resume_source=str(path), on_step=on_step)
    return fit(cfg, on_step=on_step)


def launch(overrides: dict, *, resume: str | None = None,
           on_step: Callable[[int, float], bool | None] | None = None) -> list[RunResult]:
    """Resolve ``overrides`` (YAML options merged with flags) into configs and train; return one
    :class:`RunResult` per stage (one for a plain run). An interrupted stage ends the sequence."""
    if resume and resume != "auto" and not overrides.get("stages"):
        # the checkpoint's config decides the run; resolve only to catch bad options early
        path = Path(resume)
        ckpt = load_training_checkpoint(path)
        cfg = TrainConfig.from_dict({**ckpt["config"], **overrides}, source=f"{path} + options")
        return [run_one(cfg, overrides, resume=str(path), on_step=on_step)]
    cfg = resolve_config(overrides)
    if not cfg.stages:
        return [run_one(cfg, overrides, resume=resume, on_step=on_step)]
    if resume and resume != "auto":
        raise PixelwiseError("--resume PATH continues one run; with --stages use --resume auto (every stage "
                             "resumes from its own last.pt)")
    results = []
    plans = stage_overrides(overrides, cfg)
    for i, so in enumerate(plans, start=1):
        scfg = resolve_config(so, source=f"stage {cfg.stages[i - 1]}")
        say(f"stage {i}/{len(plans)}: {cfg.stages[i - 1]} -> {scfg.out} (lr {scfg.lr:g}, {scfg.steps} steps)")
        result = run_one(scfg, so, resume=resume, on_step=on_step)
        results.append(result)
        if result.status != "finished":
            break
    return results
