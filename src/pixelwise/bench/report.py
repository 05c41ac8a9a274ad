"""Formatting benchmark results: a console table and a Markdown table."""

from __future__ import annotations


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
    widths = [max(len(row[i]) for row in rows if len(row) > i) for i in range(len(COLUMNS))]
    lines = []
    for row in rows:
        if len(row) > 2 and row[2].startswith(("skipped", "error")):
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
