"""Resident memory: current RSS and a resettable peak (Linux ``VmHWM``).

Peak RSS of an engine is measured in a fresh process (``--isolate``, the default for full runs):
after the model is built and prepared, the kernel's high-water mark is reset (``clear_refs`` 5),
the engine runs, and ``VmHWM`` is read: the peak resident memory during inference, weights and
the Python/torch runtime included. Where the reset is unavailable (non-Linux), the peak is
``ru_maxrss``, which also covers model building.
"""

from __future__ import annotations

import resource
import sys


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_mb() -> float | None:
    """Return this process's resident memory in MB (None where unknown)."""
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS; return True on success."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Return the peak resident memory in MB since the last reset (or since process start)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
