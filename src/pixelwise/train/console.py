"""What a training run says and hears on the terminal: status lines and Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading

from tqdm import tqdm

from pixelwise.train import distributed as dist_utils


def say(message: str) -> None:
    """Print a status line to stderr on rank 0 (tqdm-safe)."""
    if dist_utils.is_main():
        tqdm.write(f"pixelwise train: {message}", file=sys.stderr)


class StopRequest:
    """Turns the first Ctrl-C (SIGINT) into a request to stop after the current step and save;
    a second Ctrl-C aborts at once. Only in the main thread (signal handlers live there)."""

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        say("Ctrl-C: finishing this step and saving last.pt (press Ctrl-C again to abort without saving)")

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
