"""Formatting benchmark results: a console table and a Markdown table."""

from __future__ import annotations


def peaks_text(peaks: dict) -> str:
    """The peaks measured in a run, one phrase: ``fp32 314 GFLOP/s, bf16 n/a, int8 1520 GFLOP/s``
    (int8: 2 x int8 multiply-adds per second; CUDA only when measured)."""
    parts = [f"{name} {peaks[key]:.0f} GFLOP/s" if peaks.get(key) else f"{name} n/a"
             for key, name in (("fp32", "fp32"), ("bf16", "bf16"), ("int8", "int8"))]
    if peaks.get("cuda_bf16"):
        parts.append(f"CUDA bf16 {peaks['cuda_bf16']:.0f} GFLOP/s")
    return ", ".join(parts)


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _target_cell(r: dict) -> str:
    if "target_met" not in r:
        return ""
    if r["target_met"]:
        return "met"
    return f"missed x{r['target_gap']:.2f}"


COLUMNS = ("case", "engine", "ms", "GFLOP/s", "% peak", "x ref", "RSS MB", "rel err", "agree %", "target")


def _row(r: dict) -> list[str]:
    if r.get("skipped") or r.get("error"):
        note = r.get("skipped") or r.get("error")
        return [r["case"], r["engine"], f"skipped: {note}" if r.get("skipped") else f"error: {note}"] + [""] * 7
    pct = None if r.get("peak_fraction") is None else 100 * r["peak_fraction"]
    return [
        r["case"],
        r["engine"],
        _fmt(r.get("median_ms"), ".0f"),
        _fmt(r.get("gflops"), ".0f"),
        _fmt(pct, ".0f") + (f" ({r['precision']})" if pct is not None else ""),
        _fmt(r.get("ref_ratio"), ".2f"),
        _fmt(r.get("peak_rss_mb"), ".0f"),
        _fmt(r.get("max_rel_err"), ".1e"),
        _fmt(None if r.get("argmax_agree") is None else 100 * r["argmax_agree"], ".2f"),
        _target_cell(r),
    ]


def console_table(results: list[dict]) -> str:
    """Return an aligned plain-text table of the results."""
    rows = [list(COLUMNS)] + [_row(r) for r in results]
    note = [len(row) > 2 and row[2].startswith(("skipped", "error")) for row in rows]
    # a skip note spans the number columns: it does not set their widths
    widths = [max(len(row[i]) for row, n in zip(rows, note) if i < 2 or not n) for i in range(len(COLUMNS))]
    lines = []
    for row, n in zip(rows, note):
        if n:
            lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2]]))
        else:
            lines.append("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def markdown_table(results: list[dict]) -> str:
    """Return the results as a Markdown table (benchmarks/README.md)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        lines.append("| " + " | ".join(_row(r)) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the peer
def _auto_engines() -> dict[str, str]:
    """Return ``{engine: when auto picks it}`` for FCN in fp32 on the CPU (pixelwise.optimize)."""
    from pixelwise.optimize import AUTO_ENGINES, AUTO_ENGINES_MANY, ORT_MIN_IMAGES

    few, many = AUTO_ENGINES["fcn"], AUTO_ENGINES_MANY["fcn"]
    if few == many:
        return {few: "auto's engine"}
    return {
        few: "auto's choice for a few images while the engine cache lacks the model's graph (a first run)",
        many: f"auto's choice once the engine cache holds the graph (pixelwise predict stores it after its "
              f"first run) or for >= {ORT_MIN_IMAGES} images",
    }


def _measured(r: dict) -> bool:
    return bool(r.get("median_ms")) and not r.get("skipped") and not r.get("error")


def peer_speedups(results: list[dict], peer: str = "torchfcn") -> list[dict]:
    """Return, per case with a measured ``peer`` row, pixelwise's default engines against it:
    ``{"case", "peer", "peer_ms", "engines": [{"engine", "ms", "speedup", "speedup_via_ref", "when"}]}``.

    ``speedup`` = peer ms / engine ms (> 1: pixelwise is faster); ``speedup_via_ref`` = the engine's
    ``ref_ratio`` over the peer's, both timed interleaved with the same reference (robust to load
    that changed between the two measurements).
    """
    out = []
    for p in (r for r in results if r.get("engine") == peer and _measured(r)):
        rows = {r["engine"]: r for r in results if r.get("case") == p["case"] and _measured(r)}
        engines = []
        for name, when in _auto_engines().items():
            r = rows.get(name)
            if r is None:
                continue
            via = r["ref_ratio"] / p["ref_ratio"] if r.get("ref_ratio") and p.get("ref_ratio") else None
            engines.append({"engine": name, "ms": r["median_ms"], "speedup": p["median_ms"] / r["median_ms"],
                            "speedup_via_ref": via, "when": when})
        if engines:
            out.append({"case": p["case"], "peer": peer, "peer_ms": p["median_ms"], "engines": engines})
    return out


def peer_lines(results: list[dict], peer: str = "torchfcn") -> list[str]:
    """Return printable lines of :func:`peer_speedups` (empty when no peer row was measured)."""
    lines = []
    for s in peer_speedups(results, peer):
        lines.append(f"pixelwise's default engines vs the pytorch-fcn peer ({s['peer']}, same weights, same run), "
                     f"{s['case']}: {s['peer']} {s['peer_ms']:.0f} ms")
        for e in s["engines"]:
            via = "" if e["speedup_via_ref"] is None else f" (via the interleaved reference: x{e['speedup_via_ref']:.2f})"
            lines.append(f"  {e['engine']}: {e['ms']:.0f} ms, x{e['speedup']:.2f} vs {s['peer']}{via}: {e['when']}")
    return lines
