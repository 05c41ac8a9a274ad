"""``pixelwise train``: train any registered model on any dataset.

Every option of :class:`pixelwise.train.config.TrainConfig` is a flag (``lr_steps`` ->
``--lr-steps``); only the flags actually given override the recipe and the ``--config`` YAML.
Run under ``torchrun --nproc_per_node N`` for distributed data parallel training.
"""

from __future__ import annotations

import argparse
import dataclasses

from pixelwise.cli.options import add_dataset_options, dataset_options, parse_key_values
from pixelwise.train.config import FIELDS, MODEL_OPTIONS, base_type, coerce, load_yaml, typed_model_option
from pixelwise.train.recipes import RECIPES


FLAG_ALIASES = {"data_root": ("--root",)}
MODEL_OPTION_DEST = "model_option__"
"""Other spellings of config flags, so that dataset flags read the same on every command."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per config field, all defaulting to "not given" (argparse.SUPPRESS)."""
    groups = {
        "model": parser.add_argument_group("model"),
        "data": parser.add_argument_group("data"),
        "optimisation": parser.add_argument_group("optimisation"),
        "running": parser.add_argument_group("running"),
    }
    section = "model"
    for name, f in FIELDS.items():
        section = {"dataset": "data", "recipe": "optimisation", "out": "running"}.get(name, section)
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        tp, is_list = base_type(name)
        help_text = meta["help"]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text += f" [default: {','.join(map(str, default)) if isinstance(default, list) else default}]"
        kwargs = dict(dest=name, default=argparse.SUPPRESS, help=help_text)
        if name == "recipe":
            kwargs["choices"] = list(RECIPES)
        elif meta.get("choices"):
            kwargs["choices"] = list(meta["choices"])
        flags = [_flag(name), *FLAG_ALIASES.get(name, ())]
        if tp is bool:
            groups[section].add_argument(*flags, action=argparse.BooleanOptionalAction, **kwargs)
        elif is_list:
            groups[section].add_argument(*flags, metavar="A,B", type=str, **kwargs)
        else:
            groups[section].add_argument(*flags, type=str, **kwargs)
    add_model_option_flags(groups["model"])
    add_dataset_options(groups["data"], with_dataset=False)


def add_model_option_flags(group: argparse._ActionsContainer) -> None:
    """Add a flag per :data:`MODEL_OPTIONS` entry (``--pad100``, ``--input-size``, ...) and the
    generic ``--model-option KEY=VALUE``; their values go to the config's ``model_options``."""
    for name, option in MODEL_OPTIONS.items():
        kwargs = dict(dest=MODEL_OPTION_DEST + name, default=argparse.SUPPRESS,
                      help=f"{option.family.upper() if option.family == 'fcn' else 'DeconvNet'} builder: {option.help}")
        if option.choices:
            kwargs["choices"] = list(option.choices)
        if option.type is bool:
            group.add_argument(_flag(name), action=argparse.BooleanOptionalAction, **kwargs)
        else:
            group.add_argument(_flag(name), type=str, metavar=name.upper(), **kwargs)
    group.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                       help="any other argument of the model's builder (repeatable), e.g. upsample_bias=...")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (recipes: paper, heavy, deconvnet, demo)",
        description="Train any registered model. Precedence: defaults < --recipe < --config YAML < flags. "
        "Writes last.pt, best.pt, config.yaml, log.jsonl and curves.png into --out.",
    )
    p.add_argument("--config", metavar="YAML", help="YAML file of options (keys as in config.yaml)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="PATH|auto",
                   help="continue a run from a checkpoint (auto: OUT/last.pt if present)")
    p.add_argument("--download", action="store_true",
                   help="first download the dataset into --data-root unless it is there (voc, sbd, sbd_voc_train: "
                   "also into sbd_root, camvid; see `pixelwise data download`)")
    add_config_flags(p)
    p.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """Return the options given in ``--config`` merged with the flags actually given."""
    values = load_yaml(args.config) if args.config else {}
    for name in FIELDS:
        if hasattr(args, name):
            values[name] = coerce(name, getattr(args, name), source=_flag(name))
    given = {name: getattr(args, MODEL_OPTION_DEST + name) for name in MODEL_OPTIONS
             if hasattr(args, MODEL_OPTION_DEST + name)}
    given.update(parse_key_values(args.model_option, "--model-option"))
    if given:
        options = {k: typed_model_option(k, v, source=_flag(k)) for k, v in given.items()}
        values["model_options"] = {**(values.get("model_options") or {}), **options}
    if args.data:
        values["data_options"] = {**(values.get("data_options") or {}), **dataset_options(args)}
    return values


def download_training_data(overrides: dict) -> None:
    """``--download``: fetch the datasets the resolved config reads, unless they are there."""
    import sys

    from pixelwise.data.downloads import ensure_datasets
    from pixelwise.train.recipes import resolve_config

    cfg = resolve_config(overrides)
    ensure_datasets(cfg.dataset, cfg.data_root, cfg.data_options,
                    log=lambda line: print(f"pixelwise train: {line}", file=sys.stderr))


def run(args: argparse.Namespace) -> int:
    from pixelwise.train import distributed as dist_utils
    from pixelwise.train.staged import launch

    overrides = overrides_from_args(args)
    if overrides.get("tensorboard"):  # a missing package fails before anything is written
        from pixelwise.train.tblog import require_tensorboard

        require_tensorboard()
    if overrides.get("out"):  # --out or the YAML's out: a bad folder fails before the data and model load
        from pixelwise.fileio import ensure_writable_dir

        ensure_writable_dir(overrides["out"])
    if args.download:
        download_training_data(overrides)
    try:
        results = launch(overrides, resume=args.resume)
        main = dist_utils.is_main()
    finally:
        dist_utils.cleanup()
    last = results[-1]
    if main:
        if last.metrics:
            print(f"{last.out}: step {last.step}, val mean IU {100 * last.metrics['mean_iu']:.1f} "
                  f"({last.seconds:.0f} s)")
        else:
            print(f"{last.out}: step {last.step}, {last.status} ({last.seconds:.0f} s)")
    return 0 if last.status == "finished" else 130
