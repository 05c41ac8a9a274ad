"""``python -m pixelwise.bench.worker``: measure one (case, engine) in this fresh process.

Reads a JSON spec ``{case, engine, peaks, with_ref, threads}`` on stdin and prints the result of
:func:`pixelwise.bench.runner.measure_engine` as one JSON line on stdout.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    """Run the spec read from stdin; return the exit code."""
    import torch

    from pixelwise.bench.cases import Case
    from pixelwise.bench.runner import measure_engine

    spec = json.loads(sys.stdin.read())
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    result = measure_engine(
        Case.from_dict(spec["case"]),
        spec["engine"],
        peaks=spec["peaks"],
        with_ref=spec.get("with_ref", True),
        threads=spec.get("threads"),
        isolated=True,
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
