"""Run the full benchmark suite (or its tiny --quick version) and write the results.

    .venv/bin/python benchmarks/run.py                 # paper sizes, 9-18 min on a 2-core CPU
    .venv/bin/python benchmarks/run.py --quick         # tiny widths, seconds
    .venv/bin/python benchmarks/run.py --engines reference,channels_last,bf16

Writes ``benchmarks/results/<name>.jsonl`` (a header line with the machine, peaks and the speed-up
over the pytorch-fcn peer, then one line per engine) and ``benchmarks/results/<name>.md`` (the
Markdown table for README.md, then the speed-up lines, also printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pixelwise.bench import describe, full_plan, quick_plan, run_benchmark
from pixelwise.bench.report import peaks_text
from pixelwise.bench.report import markdown_table, peer_lines

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the suite, write the JSONL and Markdown files; return 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny widths and sizes")
    p.add_argument("--engines", default=None, help="keep only these engines (comma-separated)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-isolate", action="store_true", help="run every engine in this process (faster, rougher RSS)")
    p.add_argument("--name", default=None, help="results file name (default: quick or full)")
    args = p.parse_args(argv)
    plan = quick_plan() if args.quick else full_plan()
    if args.engines:
        keep = set(args.engines.split(","))
        plan = [(c, [e for e in es if e in keep]) for c, es in plan]
        plan = [(c, es) for c, es in plan if es]
    RESULTS.mkdir(exist_ok=True)
    name = args.name or ("quick" if args.quick else "full")
    start = time.time()
    header, results = run_benchmark(
        plan, isolate=not args.no_isolate, threads=args.threads, quick_peaks=args.quick,
        on_result=lambda r: print(json.dumps(r), flush=True),
    )
    header["seconds"] = time.time() - start
    header["command"] = "benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with open(RESULTS / f"{name}.jsonl", "w") as f:
        f.write(json.dumps({"header": header}) + "\n")
        for r in results:
            f.write(json.dumps(r) + "\n")
    peaks = header["peaks"]
    md = (
        f"Machine: {describe(header['machine'])}. 3x3 conv peak measured in the same run: "
        f"{peaks_text(peaks)}. "
        f"Command: `{header['command'].strip()}` ({header['seconds'] / 60:.1f} min).\n\n" + markdown_table(results) + "\n"
    )
    peer = peer_lines(results)
    if peer:
        md += "\n" + "\n".join(peer) + "\n"
    (RESULTS / f"{name}.md").write_text(md)
    print(md, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
