"""The speed and memory targets of issue 7, checked against paper-size (width 1.0) results."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A goal for results matching (kind, model, size, batch, precision); ``metric`` op ``value``."""

    text: str
    kind: str
    model: str
    metric: str  # median_ms | peak_fraction | limit_ratio | peak_rss_mb
    op: str  # "<=" or ">="
    value: float
    size: str | None = None
    batch: int | None = None
    precision: str | None = None

    def matches(self, r: dict) -> bool:
        """Return True when this target applies to result ``r``."""
        return (
            r.get("engine") not in ("reference", "plain", "torchfcn")  # the targets are pixelwise's
            and not r.get("skipped")
            and r.get("width") == 1.0
            and r.get("kind") == self.kind
            and r.get("model") == self.model
            and (self.size is None or r.get("size") == self.size)
            and (self.batch is None or r.get("batch") == self.batch)
            and (self.precision is None or r.get("precision") == self.precision)
        )


TARGETS = (
    Target("FCN-8s 500x500 >= 90% of the fp32 conv peak", "infer", "fcn8s", "peak_fraction", ">=", 0.90,
           size="500x500", batch=1, precision="fp32"),
    Target("DeconvNet one proposal <= 0.45 s", "proposals", "deconvnet", "median_ms", "<=", 450, batch=1,
           precision="fp32"),
    Target("50 proposals <= 1.25x the fp32 limit", "proposals", "deconvnet", "limit_ratio", "<=", 1.25,
           batch=50, precision="fp32"),
    Target("50 proposals <= 10 s in bf16", "proposals", "deconvnet", "median_ms", "<=", 10000, batch=50,
           precision="bf16"),
    Target("FCN-8s 320x320 train step >= 75% of the bf16 peak", "train", "fcn8s", "peak_fraction", ">=", 0.75,
           size="320x320", batch=1, precision="bf16"),
    Target("FCN-8s 2048x2048 < 3 GB peak RSS", "tiled", "fcn8s", "peak_rss_mb", "<=", 3000, size="2048x2048"),
)


def metric_value(r: dict, metric: str) -> float | None:
    """Return ``metric`` of result ``r``; ``limit_ratio`` = time / (GFLOP / fp32 peak GFLOP/s)."""
    if metric == "limit_ratio":
        if not (r.get("median_ms") and r.get("gflop") and r.get("peak_gflops")):
            return None
        return r["median_ms"] / 1000 / (r["gflop"] / r["peak_gflops"])
    return r.get(metric)


def annotate(r: dict) -> dict:
    """Add ``target``, ``target_value``, ``target_met`` and ``target_gap`` to ``r`` when one applies.

    ``target_gap`` is measured / goal for ``<=`` targets and goal / measured for ``>=`` ones, so a
    value above 1 says by what factor the target is missed.
    """
    for t in TARGETS:
        if not t.matches(r):
            continue
        v = metric_value(r, t.metric)
        if v is None:
            continue
        met = v <= t.value if t.op == "<=" else v >= t.value
        gap = v / t.value if t.op == "<=" else t.value / v if v else float("inf")
        r.update(target=t.text, target_value=v, target_met=met, target_gap=gap)
        break
    return r
