"""CamVid in ``pixelwise reproduce``: the published rows it is read against, its table and its claims.

The published rows (test set, 233 images at 360x480, void excluded) are from the SegNet paper
(Badrinarayanan, Kendall, Cipolla, TPAMI 2017, arXiv 1511.00561): Table 1 trains small models from
scratch on the 367 CamVid training images with median-frequency class balancing (as pixelwise's
``camvid`` recipe does); Table 3 trains the full-size models on 3433 road images without balancing.
G = pixel accuracy, C = mean class accuracy, mIoU, BF = boundary F1 (all in %).
"""

from __future__ import annotations

import math

from pixelwise.reproduce.report import claim_checks, claims_table, metric_of, name_of, pct

PUBLISHED = (
    # (row, how it was trained, G, C, mIoU, BF)
    ("SegNet-Basic", "SegNet Table 1: from scratch on the 367 images, median-freq balancing, 360x480", 82.7, 62.0,
     47.7, 35.78),
    ("FCN-Basic", "SegNet Table 1: as SegNet-Basic", 81.7, 62.4, 47.3, 38.11),
    ("FCN (learnt deconv)", "SegNet Table 3: 3433 road images, no balancing, 200k iterations", 83.14, 64.21, 51.96,
     33.18),
    ("DeconvNet", "SegNet Table 3: as above, 260k iterations", 89.58, 70.24, 59.77, 52.23),
    ("SegNet", "SegNet Table 3: as above", 90.40, 71.20, 60.10, 46.84),
)

THIN_CLASSES = ("pole", "sign-symbol", "pedestrian", "bicyclist")
"""CamVid's thin classes: where the DeconvNet paper's claim about fine structures should show."""


def thin_class_iu(result: dict, class_names: list[str]) -> float:
    """Mean IU over :data:`THIN_CLASSES` (those present in ``class_names``) of one model's result."""
    ious = [result["per_class_iu"][class_names.index(c)] for c in THIN_CLASSES if c in class_names]
    ious = [v for v in ious if v is not None and not math.isnan(v)]
    return sum(ious) / len(ious) if ious else float("nan")


def camvid_claims(class_names: list[str]) -> tuple:
    """The claims checked on CamVid: ``(text, kind, margin(models))`` with margins as fractions."""

    def miu(m: dict, k: str) -> float:
        return metric_of(m, k, "mean_iu")

    def bf(m: dict, k: str) -> float:
        return metric_of(m, k, "boundary_f1")

    def thin(m: dict, k: str) -> float:
        return thin_class_iu(m[k], class_names) if k in m else float("nan")

    claims = [
        ("FCN-16s beats FCN-32s (mean IU)", "beats", lambda m: miu(m, "fcn16s") - miu(m, "fcn32s")),
        ("FCN-16s beats FCN-32s (BF)", "beats", lambda m: bf(m, "fcn16s") - bf(m, "fcn32s")),
        ("FCN-8s beats FCN-16s (mean IU)", "beats", lambda m: miu(m, "fcn8s") - miu(m, "fcn16s")),
        ("FCN-8s beats FCN-16s (BF)", "beats", lambda m: bf(m, "fcn8s") - bf(m, "fcn16s")),
        ("DeconvNet beats FCN-8s (BF)", "beats", lambda m: bf(m, "deconvnet") - bf(m, "fcn8s")),
        (f"DeconvNet beats FCN-8s on the thin classes (mean IU of {', '.join(THIN_CLASSES)})", "beats",
         lambda m: thin(m, "deconvnet") - thin(m, "fcn8s")),
        ("EDeconvNet (mean) beats both members (mean IU)", "beats",
         lambda m: miu(m, "edeconvnet_mean") - max(miu(m, "fcn8s"), miu(m, "deconvnet"))),
    ]
    for key in ("fcn8s", "deconvnet", "edeconvnet_mean"):
        claims.append((f"the dense CRF raises {name_of(key)}'s BF", "beats",
                       lambda m, k=key: bf(m, f"{k}+crf") - bf(m, k)))
    return tuple(claims)


def camvid_checks(by_seed: dict, class_names: list[str]) -> list[dict]:
    """:func:`pixelwise.reproduce.report.claim_checks` with the CamVid claims (margins in points)."""
    return claim_checks(by_seed, claims=camvid_claims(class_names))


def camvid_table(by_seed: dict) -> str:
    """G / C / mIoU / BF of every model on every seed (``{seed: {"models": ...}}``), then the
    published rows."""
    lines = ["| model | seed | G | C | mIoU | BF | trained |", "|---|---|---|---|---|---|---|"]
    first = next(iter(by_seed.values()))["models"]
    for key in first:
        for seed, run in by_seed.items():
            r = run["models"].get(key)
            if r is None:
                continue
            lines.append(f"| {name_of(key)} | {seed} | {pct(r['pixel_acc'])} | {pct(r['mean_acc'])} | "
                         f"{pct(r['mean_iu'])} | {pct(r.get('boundary_f1'))} | pixelwise, this run |")
    for row, how, g, c, miou, bf in PUBLISHED:
        lines.append(f"| {row} (published) | - | {g:.1f} | {c:.1f} | {miou:.1f} | {bf:.1f} | {how} |")
    return "\n".join(lines)


def per_class_table(models: dict, class_names: list[str]) -> str:
    """Per-class IU of every model (one seed), with the thin-class mean."""
    head = "| model | " + " | ".join(class_names) + " | thin | mean |"
    lines = [head, "|---" * (len(class_names) + 3) + "|"]
    for key, r in models.items():
        cells = " | ".join(pct(v) for v in r["per_class_iu"])
        lines.append(f"| {name_of(key)} | {cells} | {pct(thin_class_iu(r, class_names))} | **{pct(r['mean_iu'])}** |")
    return "\n".join(lines)


def camvid_sections(results: dict) -> list[tuple[str, str, str]]:
    """The CamVid parts of the report: ``(file name, title, markdown)`` each."""
    names = results["class_names"]
    return [
        ("camvid_table.md", "CamVid test set: G / C / mIoU / BF (%), beside the published rows",
         camvid_table(results["by_seed"])),
        ("camvid_per_class.md", "CamVid test set: IU per class (first seed)", per_class_table(results["models"], names)),
        ("camvid_claims.md", "The papers' mechanisms on CamVid (margins in points, ours minus theirs)",
         claims_table(results["claims"])),
    ]
