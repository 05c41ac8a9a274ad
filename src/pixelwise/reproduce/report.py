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

from pixelwise.reproduce.run import DISPLAY, FCN_MODELS

PAPER_UPPER_BOUND = {"32": 86.1, "16": 92.8, "8": 96.4}  # FCN Appendix A, PASCAL VOC
PAPER_TABLE2 = {  # FCN CVPR Table 2 (seg11valid): pixel acc, mean acc, mean IU, f.w. IU
    "fcn32s": (89.1, 73.3, 59.4, 81.4),
    "fcn16s": (90.0, 75.7, 62.4, 83.0),
    "fcn8s": (90.3, 75.9, 62.7, 83.2),
}
DECONV_ROWS = ("fcn8s", "deconvnet", "edeconvnet_mean", "edeconvnet_product")
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
    for key in FCN_MODELS:
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
        s = r.get("by_size")
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


def claim_checks(models: dict) -> list[str]:
    """The papers' orderings, each stated with whether it holds on this data (a win needs a margin
    of more than half an IU point)."""

    def miu(k):
        return models[k]["mean_iu"]

    def small(k):
        s = models[k].get("by_size")
        return s["small"]["mean_iu"] if s else float("nan")

    def beats(a: float, b: float) -> bool:
        return a > b + MARGIN

    checks = [
        ("FCN-16s beats FCN-32s (mean IU)", beats(miu("fcn16s"), miu("fcn32s"))),
        ("FCN-8s beats FCN-16s (mean IU)", beats(miu("fcn8s"), miu("fcn16s"))),
        ("FCN-8s staged is about as good as at-once (within 1 point)", abs(miu("fcn8s") - miu("fcn8s_atonce")) <= 0.01),
        ("DeconvNet beats FCN-8s on small objects (small-bucket IU)", beats(small("deconvnet"), small("fcn8s"))),
        ("EDeconvNet (mean) beats both members (mean IU)",
         beats(miu("edeconvnet_mean"), max(miu("fcn8s"), miu("deconvnet")))),
    ]
    if "edeconvnet_mean+crf" in models:
        checks.append(("CRF improves EDeconvNet (mean)", beats(miu("edeconvnet_mean+crf"), miu("edeconvnet_mean"))))
        checks.append(("CRF improves DeconvNet", beats(miu("deconvnet+crf"), miu("deconvnet"))))
    return [f"- {'holds' if ok else 'does NOT hold'}: {text}" for text, ok in checks]


def write_report(results: dict, out: Path) -> None:
    """Write every table (markdown), the comparison figure and report.md into ``out``."""
    from pixelwise.viz.grids import comparison_grid

    models = results["models"]
    tables = {
        "fcn_table.md": ("FCN Table 2 (validation split)", fcn_table(models)),
        "deconvnet_table.md": ("DeconvNet table: IU per class", deconvnet_table(models, results["class_names"])),
        "size_table.md": ("By object size (synthetic size buckets)", size_table(models)),
        "upper_bound.md": ("FCN Appendix A: upper bound from down/up-sampling the truth", upper_bound_table(results["upper_bound"])),
        "cost.md": ("Time and memory", cost_table(models)),
    }
    for fname, (title, table) in tables.items():
        (out / fname).write_text(f"## {title}\n\n{table}\n")
    grid = results["grid"]
    if grid["image"]:
        order = [k for k in ("fcn32s", "fcn16s", "fcn8s", "deconvnet", "edeconvnet_mean", "edeconvnet_mean+crf")
                 if k in grid]
        columns = {"truth": grid["truth"], **{name_of(k): grid[k] for k in order}}
        fig = comparison_grid(grid["image"], columns, results["class_names"])
        fig.savefig(out / "comparison.png", bbox_inches="tight")
    cfg = results["config"]
    secs = results["seconds"]
    text = [
        "# pixelwise reproduce",
        "",
        f"Dataset `{cfg['dataset']}`, {results['num_images']} validation images, seed {cfg['seed']}; "
        f"FCN width {cfg['fcn_width']} ({'pad 100' if cfg['pad100'] else 'pad-free'}), DeconvNet width "
        f"{cfg['deconv_width']}, recipe `{cfg['recipe']}`; DeconvNet on `{cfg['proposals']}` proposals "
        f"(top {cfg['top_k']}, {results['mean_boxes']:.1f} boxes per image on average). "
        f"Total {secs['total'] / 60:.1f} min (training {secs['train'] / 60:.1f} min).",
        "",
    ]
    for title, table in tables.values():
        text += [f"## {title}", "", table, ""]
    text += ["## The papers' claims on this data", "", *claim_checks(models), ""]
    if grid["image"]:
        text += ["## Examples", "", "![comparison](comparison.png)", ""]
    (out / "report.md").write_text("\n".join(text))
