"""Load test of ``pixelwise serve``: concurrent clients over loopback, bounded in count and time.

    .venv/bin/python benchmarks/serve_load.py --demo-dir demo-out                # 8 clients, 2 minutes
    .venv/bin/python benchmarks/serve_load.py --demo-dir demo-out --seconds 10 --output load.json

Starts ``pixelwise serve`` on a free loopback port (127.0.0.1 only) with the demo's models (its
FCN-8s, DeconvNet and EDeconvNet), ``--concurrency`` segment requests at once and a ``--queue``
of waiting ones, then:

1. **the load**: ``--clients`` concurrent clients (gradio's client, a session each) send segment
   requests one after another for ``--seconds`` (at most ``--max-requests``), round-robin over
   the models and a few of the demo world's validation scenes (DeconvNet on sliding-window
   proposals); :func:`pixelwise.serve.load.run_load` records requests served, errors (the goal:
   0), p50/p95 latency and the server's resident memory every half second (the goal: flat after
   the warm-up, the first fifth of the run);
2. **over the limits**: one upload larger than ``--max-megapixels`` (its one-line message), and a
   burst of more clients than the queue holds for a few seconds (the refused requests' line).

Prints the figures and, with ``--output``, writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from pixelwise.serve.load import stop_server


def start_server(args: argparse.Namespace, port: int, log: Path) -> tuple[subprocess.Popen, list[str]]:
    """Start ``pixelwise serve`` (loopback only); wait until the page answers; return the process
    and the labels of its models (from its log)."""
    cmd = [sys.executable, "-m", "pixelwise", "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--examples", "0", "--concurrency", str(args.concurrency), "--queue", str(args.queue),
           "--max-megapixels", str(args.max_megapixels), "--engine", args.engine]
    cmd += ["--checkpoint", *map(str, args.checkpoint)] if args.checkpoint else ["--demo-dir", str(args.demo_dir)]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            sys.exit(f"pixelwise serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                if response.status == 200 and "Ctrl-C" in log.read_text():
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_server(proc)
            sys.exit(f"pixelwise serve did not answer within 180 s:\n{log.read_text()}")
        time.sleep(0.5)
    return proc, re.findall(r"^pixelwise serve: model (.+)$", log.read_text(), flags=re.M)


def write_scenes(folder: Path, count: int, size: int) -> list[Path]:
    """The demo world's first ``count`` validation scenes as PNGs."""
    from pixelwise.data import build_dataset, write_image

    folder.mkdir(parents=True, exist_ok=True)
    data = build_dataset("synthetic", split="val", length=count, size=size, num_classes=4)
    paths = []
    for i in range(count):
        paths.append(folder / f"scene_{i}.png")
        write_image(paths[-1], np.asarray(data[i]["image"]))
    return paths


def over_the_limits(url: str, folder: Path, label: str, args: argparse.Namespace) -> dict:
    """An upload over ``--max-megapixels`` (its status line) and a burst of ``queue + concurrency
    + 4`` clients for a few seconds (what the refused requests were told)."""
    from PIL import Image

    from pixelwise.serve.load import Request, run_load

    side = int((args.max_megapixels * 1.5e6) ** 0.5) + 1
    big = folder / "too_big.png"
    Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(big)
    too_big = run_load(url, [Request(big, label)], clients=1, seconds=60, max_requests=1)
    burst_clients = args.queue + args.concurrency + 4
    scene = write_scenes(folder / "burst", 1, args.size)[0]
    burst = run_load(url, [Request(scene, label)], clients=burst_clients, seconds=args.burst_seconds)
    return {"too_big": {"side": side, "messages": dict(too_big.errors)},
            "burst": {"clients": burst_clients, "served": burst.served, "refused": dict(burst.errors)}}


def main(argv: list[str] | None = None) -> int:
    """Run the load test; print (and with ``--output`` write) the figures; return 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--demo-dir", type=Path, help="output folder of `pixelwise demo` (its models are served)")
    src.add_argument("--checkpoint", type=Path, nargs="+", help="checkpoints to serve instead")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=120.0, help="length of the load (default 120)")
    p.add_argument("--max-requests", type=int, default=5000, help="stop after this many requests (default 5000)")
    p.add_argument("--concurrency", type=int, default=1, help="the server's --concurrency (default 1)")
    p.add_argument("--queue", type=int, default=16, help="the server's --queue (default 16)")
    p.add_argument("--engine", default="auto", help="the server's --engine (default auto)")
    p.add_argument("--max-megapixels", type=float, default=1.0, help="the server's limit (default 1 MP)")
    p.add_argument("--size", type=int, default=96, help="side of the scenes sent (default 96, the demo's)")
    p.add_argument("--burst-seconds", type=float, default=5.0, help="length of the over-the-queue burst (0: none)")
    p.add_argument("--output", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.max_requests < 1:
        p.error("--clients and --max-requests must be >= 1, --seconds positive")
    with tempfile.TemporaryDirectory(prefix="pixelwise-serve-load-") as tmp:
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, folder: Path) -> int:
    from pixelwise.runtime import cpu_model
    from pixelwise.serve.load import Request, free_port, run_load

    port = free_port()
    proc, labels = start_server(args, port, folder / "serve.log")
    url = f"http://127.0.0.1:{port}/"
    try:
        scenes = write_scenes(folder / "scenes", 4, args.size)
        requests = [Request(scene, label) for label in labels for scene in scenes]
        print(f"serving {', '.join(labels)} on {url} (pid {proc.pid}); {args.clients} clients for {args.seconds:.0f} s",
              flush=True)
        report = run_load(url, requests, clients=args.clients, seconds=args.seconds, max_requests=args.max_requests,
                          pid=proc.pid)
        limits = over_the_limits(url, folder, labels[0], args) if args.burst_seconds > 0 else {}
    finally:
        stop_server(proc)
    print("\n".join(report.lines()))
    for message, count in limits.get("too_big", {}).get("messages", {}).items():
        print(f"over --max-megapixels: {message!r} (x{count})")
    if limits:
        b = limits["burst"]
        print(f"burst of {b['clients']} clients (queue {args.queue}, concurrency {args.concurrency}): {b['served']} "
              f"served, refused: {b['refused'] or 'none'}")
    if args.output:
        info = {"cpu": cpu_model(), "cores": os.cpu_count(), "models": labels, "engine": args.engine,
                "concurrency": args.concurrency, "queue": args.queue, "image_size": args.size}
        args.output.write_text(json.dumps({"info": info, "load": report.to_dict(), "limits": limits}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
