"""A load test of a running ``pixelwise serve`` page: concurrent clients over loopback.

:func:`run_load` starts ``clients`` threads, each with its own gradio client (a session of its
own, as a browser tab has), which send segment requests one after another, round-robin over the
given requests, until ``seconds`` have passed or ``max_requests`` were sent (bounded in both). It
records each request's latency and whether it succeeded (the page's status line says
"segmented in"), and samples the server's resident memory (``/proc/PID/status``) meanwhile.
:class:`LoadReport` holds the figures: requests served, errors, p50/p95 latency, throughput and
resident memory after the warm-up, at the end and at its peak. ``benchmarks/serve_load.py`` runs
it against the demo's models; a few-second version runs in the tests.
"""

from __future__ import annotations

import itertools
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pixelwise.errors import PixelwiseError, first_line

ENDPOINT = "/segment_request"
"""The page's segment endpoint (named after :meth:`pixelwise.serve.app._Requests.segment_request`)."""

SUCCESS = "segmented in"
"""What the status line of a segmented image says (any other line is the request's error)."""


@dataclass(frozen=True)
class Request:
    """One segment request: an image file, a model label and the page's options."""

    image: Path
    model: str
    proposals: str = "sliding"
    top_k: int = 20

    def arguments(self) -> tuple:
        """The endpoint's inputs: upload, model, tiling, exact tiling, TTA, proposals, top-k, CRF,
        opacity, boxes."""
        from gradio_client import handle_file

        return (handle_file(str(self.image)), self.model, "off", False, "none", self.proposals, self.top_k, False,
                0.5, True)


def free_port() -> int:
    """A TCP port free on the loopback interface (for a page to serve on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_server(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a ``pixelwise serve`` process as a user does (Ctrl-C), killing it after ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MB (``VmRSS``; None where /proc cannot tell)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class LoadReport:
    """What :func:`run_load` measured. ``latencies`` of the served requests (seconds, in the order
    they finished, with ``finished`` their end times from the start), ``errors`` by first line,
    ``rss`` the server's memory samples ``(seconds from the start, MB)``."""

    clients: int
    seconds: float
    warmup: float
    latencies: list[float] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    rss: list[tuple[float, float]] = field(default_factory=list)

    @property
    def served(self) -> int:
        """Requests that got their segmentation."""
        return len(self.latencies)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100) of the served requests' latency, seconds."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def rss_summary(self) -> dict:
        """Server memory (MB): the peak during the warm-up, the peak after it, at the end, overall."""
        warm = [mb for t, mb in self.rss if t <= self.warmup]
        after = [mb for t, mb in self.rss if t > self.warmup]
        return {"warmup_peak_mb": max(warm, default=None), "after_warmup_peak_mb": max(after, default=None),
                "end_mb": self.rss[-1][1] if self.rss else None,
                "peak_mb": max((mb for _, mb in self.rss), default=None),
                "after_warmup_growth_mb": (after[-1] - after[0]) if len(after) > 1 else None}

    def to_dict(self) -> dict:
        """The figures as JSON-ready values (latencies in seconds)."""
        return {"clients": self.clients, "seconds": self.seconds, "warmup_s": self.warmup, "served": self.served,
                "errors": sum(self.errors.values()), "error_kinds": dict(self.errors),
                "throughput_per_s": self.served / self.seconds if self.seconds else None,
                "latency_p50_s": self.percentile(50), "latency_p95_s": self.percentile(95),
                "latency_max_s": max(self.latencies, default=None),
                "latency_mean_s": statistics.fmean(self.latencies) if self.latencies else None,
                **self.rss_summary(), "rss_samples": self.rss}

    def lines(self) -> list[str]:
        """The report as a few printable lines."""
        d = self.to_dict()
        text = [f"{d['clients']} clients, {d['seconds']:.0f} s: {d['served']} requests served "
                f"({d['throughput_per_s']:.2f}/s), {d['errors']} errors"]
        text += [f"  error: {kind} (x{n})" for kind, n in self.errors.most_common()]
        if self.latencies:
            text.append(f"latency p50 {d['latency_p50_s']:.2f} s, p95 {d['latency_p95_s']:.2f} s, "
                        f"max {d['latency_max_s']:.2f} s")
        if d["peak_mb"] is not None:
            text.append(f"server RSS: peak {d['warmup_peak_mb'] or 0:.0f} MB in the first {self.warmup:.0f} s "
                        f"(warm-up), {d['after_warmup_peak_mb'] or 0:.0f} MB after it, {d['end_mb']:.0f} MB at the end")
        return text


def _client(url: str):
    from gradio_client import Client

    try:
        return Client(url, verbose=False)
    except Exception as exc:  # gradio_client's own exception types
        raise PixelwiseError(f"cannot reach the page at {url}: {first_line(exc)}") from None


def run_load(url: str, requests: list[Request], *, clients: int = 8, seconds: float = 120.0,
             max_requests: int | None = None, pid: int | None = None, warmup: float | None = None,
             sample_every: float = 0.5) -> LoadReport:
    """Send ``requests`` (round-robin) from ``clients`` concurrent clients to the page at ``url``
    until ``seconds`` have passed or ``max_requests`` were sent; sample the memory of the server
    process ``pid`` meanwhile. ``warmup``: the seconds counted as warm-up in the memory summary
    (default a fifth of ``seconds``). Returns the :class:`LoadReport`."""
    if clients < 1 or seconds <= 0 or not requests:
        raise PixelwiseError("a load test needs >= 1 client, a positive duration and at least one request")
    report = LoadReport(clients, seconds, seconds / 5 if warmup is None else warmup)
    lock = threading.Lock()
    order = itertools.cycle(requests)
    sent = itertools.count()
    start = time.perf_counter()
    deadline = start + seconds
    stop = threading.Event()

    def next_request() -> Request | None:
        with lock:
            if time.perf_counter() >= deadline or (max_requests is not None and next(sent) >= max_requests):
                return None
            return next(order)

    def work() -> None:
        try:
            client = _client(url)
        except PixelwiseError as exc:
            with lock:
                report.errors[str(exc)] += 1
            return
        while (request := next_request()) is not None:
            t0 = time.perf_counter()
            try:
                status = str(client.predict(*request.arguments(), api_name=ENDPOINT)[5])
            except Exception as exc:  # the client raises the server's refusals (a full queue) as exceptions
                status = f"{type(exc).__name__}: {first_line(exc)}"
            now = time.perf_counter()
            with lock:
                if SUCCESS in status:
                    report.latencies.append(now - t0)
                    report.finished.append(now - start)
                else:
                    report.errors[status.splitlines()[0][:120] if status else "empty status"] += 1

    def sample() -> None:
        while pid is not None and not stop.is_set():
            mb = rss_mb(pid)
            if mb is not None:
                report.rss.append((time.perf_counter() - start, mb))
            stop.wait(sample_every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    sampler.join()
    report.seconds = time.perf_counter() - start
    return report
