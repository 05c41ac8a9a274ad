"""Tables and figure of ``pixelwise reproduce``, in the papers' layouts (markdown + JSON).

Written into the output folder: ``fcn_table.md`` (FCN Table 2: pixel acc. / mean acc. / mean IU /
f.w. IU), ``deconvnet_table.md`` (mean IU and per-class IU, as DeconvNet's Table 1),
``size_table.md`` (mean IU and accuracy by object size), ``upper_bound.md`` (FCN Appendix A),
``cost.md`` (parameters, training time, inference time and memory), ``comparison.png`` and
``report.md`` with all of them and the claim checks.
"""

from __future__ import annotations

import math
from pathlib import Path

from pixelwise.reproduce.config import DISPLAY, FCN_MODELS

PAPER_UPPER_BOUND = {"32": 86.1, "16": 92.8, "8": 96.4}  # FCN Appendix A, PASCAL VOC
PAPER_TABLE2 = {  # FCN CVPR Table 2 (seg11valid): pixel acc, mean acc, mean IU, f.w. IU
    "fcn32s": (89.1, 73.3, 59.4, 81.4),
    "fcn16s": (90.0, 75.7, 62.4, 83.0),
    "fcn8s": (90.3, 75.9, 62.7, 83.2),
}
DECONV_ROWS = ("fcn8s", "deconvnet", "edeconvnet_mean", "edeconvnet_release")
MARGIN = 0.005  # "A beats B" needs more than half a point of IU: smaller gaps are ties


def pct(v) -> str:
    """Format a 0..1 fraction as a percentage with one decimal ('-' for NaN/None)."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def name_of(key: str) -> str:
    """Display name of a result key such as ``deconvnet+crf``."""
    base, crf = (key[:-4], True) if key.endswith("+crf") else (key, False)
    return DISPLAY.get(base, base) + (" + CRF" if crf else "")


def fcn_table(models: dict) -> str:
    """FCN Table 2 layout, with the paper's VOC numbers beside ours for reference."""
    lines = [
        "| model | pixel acc. | mean acc. | mean IU | f.w. IU | paper (VOC seg11valid) |",
        "|---|---|---|---|---|---|",
    ]
    for key in (k for k in FCN_MODELS if k in models):
        r = models[key]
        paper = " / ".join(f"{v:.1f}" for v in PAPER_TABLE2[key]) if key in PAPER_TABLE2 else "-"
        lines.append(
            f"| {name_of(key)} | {pct(r['pixel_acc'])} | {pct(r['mean_acc'])} | {pct(r['mean_iu'])} "
            f"| {pct(r['fw_iu'])} | {paper} |"
        )
    return "\n".join(lines)


def deconvnet_table(models: dict, class_names: list[str]) -> str:
    """DeconvNet's Table 1 layout: one row per method, per-class IU and the mean."""
    keys = [k for base in DECONV_ROWS for k in (base, f"{base}+crf") if k in models]
    head = "| method | " + " | ".join(class_names) + " | mean |"
    lines = [head, "|---" * (len(class_names) + 2) + "|"]
    for key in keys:
        r = models[key]
        cells = " | ".join(pct(v) for v in r["per_class_iu"])
        lines.append(f"| {name_of(key)} | {cells} | **{pct(r['mean_iu'])}** |")
    return "\n".join(lines)


def size_table(models: dict) -> str:
    """Mean IU and pixel accuracy per object size bucket."""
    lines = [
        "| model | small IU | medium IU | large IU | small acc. | medium acc. | large acc. |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in models.items():
        s = r.get("size_buckets")
        if not s:
            continue
        lines.append(
            f"| {name_of(key)} | {pct(s['small']['mean_iu'])} | {pct(s['medium']['mean_iu'])} "
            f"| {pct(s['large']['mean_iu'])} | {pct(s['small']['acc'])} | {pct(s['medium']['acc'])} "
            f"| {pct(s['large']['acc'])} |"
        )
    return "\n".join(lines)


def upper_bound_table(bound: dict) -> str:
    """FCN Appendix A: mean IU of the truth down- and up-sampled by each factor."""
    lines = ["| factor | mean IU (this data) | paper (VOC) |", "|---|---|---|"]
    for f, r in bound.items():
        lines.append(f"| {f} | {pct(r['mean_iu'])} | {PAPER_UPPER_BOUND.get(str(f), '-')} |")
    return "\n".join(lines)


def cost_table(models: dict) -> str:
    """Parameters, training time, inference time per image and peak inference memory."""
    lines = [
        "| model | params | train (s) | inference (ms/image) | peak memory (MB) |",
        "|---|---|---|---|---|",
    ]
    for key, r in models.items():
        mem = "-" if r.get("peak_mb") is None else f"{r['peak_mb']:.0f}"
        params = f"{r['params'] / 1e6:.2f}M" if "params" in r else "-"
        train = f"{r['train_seconds']:.0f}" if "train_seconds" in r else "-"
        lines.append(f"| {name_of(key)} | {params} | {train} | {r['ms_per_image']:.0f} | {mem} |")
    return "\n".join(lines)


CLAIMS = (
    # (text, kind, how to compute "ours - theirs" in IU from one seed's models)
    ("FCN-16s beats FCN-32s (mean IU)", "beats", lambda m: _miu(m, "fcn16s") - _miu(m, "fcn32s")),
    ("FCN-8s beats FCN-16s (mean IU)", "beats", lambda m: _miu(m, "fcn8s") - _miu(m, "fcn16s")),
    ("FCN-8s staged is about as good as at-once (mean IU within 1 point)", "ties",
     lambda m: _miu(m, "fcn8s") - _miu(m, "fcn8s_atonce")),
    ("DeconvNet on proposals beats FCN-8s on small objects (small-bucket IU)", "beats",
     lambda m: _small(m, "deconvnet") - _small(m, "fcn8s")),
    ("DeconvNet on proposals finds more small-object pixels than FCN-8s (small-bucket accuracy)", "beats",
     lambda m: _small(m, "deconvnet", "acc") - _small(m, "fcn8s", "acc")),
    ("EDeconvNet (mean) beats both members (mean IU)", "beats",
     lambda m: _miu(m, "edeconvnet_mean") - max(_miu(m, "fcn8s"), _miu(m, "deconvnet"))),
    ("EDeconvNet (release: product) beats both members (mean IU)", "beats",
     lambda m: _miu(m, "edeconvnet_release") - max(_miu(m, "fcn8s"), _miu(m, "deconvnet"))),
    ("CRF improves EDeconvNet (mean) (mean IU)", "beats",
     lambda m: _miu(m, "edeconvnet_mean+crf") - _miu(m, "edeconvnet_mean")),
    ("CRF improves EDeconvNet (release: product) (mean IU)", "beats",
     lambda m: _miu(m, "edeconvnet_release+crf") - _miu(m, "edeconvnet_release")),
    ("CRF improves DeconvNet (mean IU)", "beats", lambda m: _miu(m, "deconvnet+crf") - _miu(m, "deconvnet")),
)
TIE = 0.01  # "about as good": within one IU point


def metric_of(models: dict, key: str, name: str) -> float:
    """Return metric ``name`` of model ``key`` in ``models`` as a float (NaN when either is missing)."""
    value = models.get(key, {}).get(name)
    return float("nan") if value is None else float(value)


def _miu(models: dict, key: str) -> float:
    return models[key]["mean_iu"] if key in models else float("nan")


def _small(models: dict, key: str, metric: str = "mean_iu") -> float:
    sizes = models.get(key, {}).get("size_buckets")
    return sizes["small"].get(metric, float("nan")) if sizes else float("nan")


def _bf(models: dict, key: str) -> float:
    return metric_of(models, key, "boundary_f1")


def _claim_pair(text: str, ours: str, theirs: str) -> tuple:
    """The claim "``ours`` beats ``theirs``" twice: on mean IU and on boundaries (BF)."""
    return ((f"{text} (mean IU)", "beats", lambda m: _miu(m, ours) - _miu(m, theirs)),
            (f"{text} (BF)", "beats", lambda m: _bf(m, ours) - _bf(m, theirs)))


def _ensemble_gain(m: dict, metric) -> float:
    return metric(m, "edeconvnet_mean") - max(metric(m, "fcn8s"), metric(m, "deconvnet"))


DEMO_CLAIMS = (
    *_claim_pair("FCN-16s beats FCN-32s", "fcn16s", "fcn32s"),
    *_claim_pair("FCN-8s beats FCN-16s", "fcn8s", "fcn16s"),
    ("DeconvNet on proposals beats FCN-8s on small objects (small-bucket IU)", "beats",
     lambda m: _small(m, "deconvnet") - _small(m, "fcn8s")),
    ("DeconvNet on proposals beats FCN-8s on boundaries (BF)", "beats", lambda m: _bf(m, "deconvnet") - _bf(m, "fcn8s")),
    ("EDeconvNet (mean) beats both members (mean IU)", "beats", lambda m: _ensemble_gain(m, _miu)),
    ("EDeconvNet (mean) beats both members (BF)", "beats", lambda m: _ensemble_gain(m, _bf)),
    *(claim for key in ("fcn8s", "deconvnet", "edeconvnet_mean")
      for claim in _claim_pair(f"the dense CRF improves {DISPLAY[key]}", f"{key}+crf", key)),
)
"""The claims the demo checks on the built-in world: the papers' orderings on mean IU, on small
objects and on boundaries (BF), and the dense CRF on each model."""


def claim_checks(by_seed: dict, claims: tuple | None = None) -> list[dict]:
    """Check the papers' orderings (``claims``, default :data:`CLAIMS`) on every seed's results
    (``{seed: models}``). Returns one dict per claim whose models were evaluated: ``claim``,
    ``margins`` (``{seed: points, ours minus theirs}``), ``holds`` (``{seed: bool}``: a win needs
    more than half a point, a tie at most one point either way) and ``verdict`` (holds on every
    seed / on some / on none)."""
    out = []
    for text, kind, margin in CLAIMS if claims is None else claims:
        margins = {str(seed): 100 * margin(models) for seed, models in by_seed.items()}
        if any(math.isnan(v) for v in margins.values()):
            continue
        if kind == "ties":
            holds = {seed: abs(v) <= 100 * TIE for seed, v in margins.items()}
        else:
            holds = {seed: v > 100 * MARGIN for seed, v in margins.items()}
        n = sum(holds.values())
        verdict = ("holds" if n == len(holds) else "does NOT hold" if n == 0 else f"holds on {n} of {len(holds)} seeds")
        out.append({"claim": text, "margins": margins, "holds": holds, "verdict": verdict})
    return out


def claims_table(claims: list[dict]) -> str:
    """The claim checks as a table: one column of margins (IU points) per seed, and the verdict."""
    if not claims:
        return "(no claim could be checked: its models were not evaluated)"
    seeds = list(claims[0]["margins"])
    lines = ["| claim | " + " | ".join(f"seed {s}" for s in seeds) + " | verdict |",
             "|---" * (len(seeds) + 2) + "|"]
    for c in claims:
        cells = " | ".join(f"{c['margins'][s]:+.1f}" for s in seeds)
        lines.append(f"| {c['claim']} | {cells} | **{c['verdict']}** |")
    return "\n".join(lines)


def _deconvnet_setting(cfg: dict, results: dict) -> str:
    """How DeconvNet was run, in words."""
    if cfg["proposals"] == "none":
        return f"DeconvNet ({cfg['input_size']}-px model) on the whole image"
    return (f"DeconvNet on {cfg['input_size']}-px crops of `{cfg['proposals']}` proposals (top {cfg['top_k']}, "
            f"{results['mean_boxes']:.1f} boxes per image on average)")


def write_report(results: dict, out: Path, extra: list[tuple[str, str, str]] = ()) -> None:
    """Write every table (markdown; ``extra`` ``(file, title, table)`` ones first), the comparison
    figure and report.md into ``out``."""
    from pixelwise.viz.grids import comparison_grid

    models = results["models"]
    cfg = results["config"]
    split = cfg.get("eval_split") or cfg["val_split"]
    tables = {fname: (title, table) for fname, title, table in extra}
    tables.update({
        "fcn_table.md": (f"FCN Table 2 ({split} split)", fcn_table(models)),
        "deconvnet_table.md": ("DeconvNet table: IU per class", deconvnet_table(models, results["class_names"])),
        "size_table.md": ("By object size (synthetic size buckets)", size_table(models)),
        "upper_bound.md": ("FCN Appendix A: upper bound from down/up-sampling the truth", upper_bound_table(results["upper_bound"])),
        "cost.md": ("Time and memory", cost_table(models)),
    })
    if not any(r.get("size_buckets") for r in models.values()):
        del tables["size_table.md"]  # only the built-in world has object-size maps
    for fname, (title, table) in tables.items():
        (out / fname).write_text(f"## {title}\n\n{table}\n")
    grid = results["grid"]
    if grid["image"]:
        order = [k for k in ("fcn32s", "fcn16s", "fcn8s", "deconvnet", "edeconvnet_mean", "edeconvnet_release+crf")
                 if k in grid]
        columns = {"truth": grid["truth"], **{name_of(k): grid[k] for k in order}}
        fig = comparison_grid(grid["image"], columns, results["class_names"], results.get("palette"))
        fig.savefig(out / "comparison.png", bbox_inches="tight")
    secs = results["seconds"]
    seeds = ", ".join(str(s) for s in cfg["seeds"])
    train_min = ", ".join(f"seed {s} {r['seconds']['train'] / 60:.1f} min" for s, r in results["by_seed"].items())
    text = [
        "# pixelwise reproduce",
        "",
        f"Dataset `{cfg['dataset']}` ({', '.join(f'{k}={v}' for k, v in cfg['data_options'].items()) or 'defaults'}), "
        f"{results['num_images']} {split} images, seeds {seeds}; width {cfg['width']} "
        f"({'pad 100' if cfg['pad100'] else 'pad-free'} FCN), recipe `{cfg['recipe']}`, backbone "
        f"`{results.get('backbone') or 'none (from scratch)'}`; {_deconvnet_setting(cfg, results)}, deep "
        f"supervision {cfg['deep_supervision']:g}; networks run at {cfg.get('input_scale', 1.0):g}x the image "
        f"size, scored at full size. Total {secs['total'] / 60:.1f} min (backbone "
        f"{secs['pretrain'] / 60:.1f} min; training {train_min}).",
        "",
        f"Tables: seed {cfg['seeds'][0]}. Claims: every seed, margins in IU points (ours minus theirs; a win needs "
        "more than +0.5, a tie at most 1 point either way).",
        "",
    ]
    for title, table in tables.values():
        text += [f"## {title}", "", table, ""]
    if results.get("collapsed"):
        text += ["## Collapsed models", "", *[f"- {note}" for note in results["collapsed"].values()], ""]
    text += ["## The papers' claims on this data", "", claims_table(results["claims"]), ""]
    if grid["image"]:
        text += ["## Examples", "", "![comparison](comparison.png)", ""]
    (out / "report.md").write_text("\n".join(text))
