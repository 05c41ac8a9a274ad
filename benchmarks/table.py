"""Print the Markdown table of a results file written by ``benchmarks/run.py`` or ``pixelwise bench --output``.

    .venv/bin/python benchmarks/table.py benchmarks/results/full.jsonl
"""

from __future__ import annotations

import json
import sys

from pixelwise.bench import annotate, describe
from pixelwise.bench.report import markdown_table, peaks_text


def main(argv: list[str] | None = None) -> int:
    """Print the header line and the table of each file named in ``argv``; return 0."""
    for path in argv if argv is not None else sys.argv[1:]:
        rows = [json.loads(line) for line in open(path) if line.strip()]
        header = rows[0].get("header") if rows and "header" in rows[0] else None
        results = [annotate(r) for r in rows if "header" not in r]
        if header:
            peaks = header["peaks"]
            print(f"{describe(header['machine'])}; conv peak {peaks_text(peaks)}\n")
        print(markdown_table(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
