"""A loopback HTTP server for the download tests (127.0.0.1 only, a thread), with Range requests.

``server.files[name] = bytes`` serves a file at ``server.url(name)``; ``server.requests`` lists
``(name, Range header)`` of every request. Misbehaviour on demand: ``drop_once`` (send half the
body, then close the connection; once), ``hang`` (accept and never answer), ``ignore_range``
(answer a range request with the whole file), and any other name is a 404.

Import the ``server`` fixture into a test module: ``from loopback import server  # noqa: F401``;
``read_only`` is a folder no file can be written in (for the one-line write errors).
"""

from __future__ import annotations

import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class Loopback:
    """The server and what it serves; use as a context manager (started and stopped)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.drop_once: set[str] = set()
        self.hang: set[str] = set()
        self.ignore_range: set[str] = set()
        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, name: str) -> str:
        """The URL of ``name`` on this server."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def names(self) -> list[str]:
        """The names requested so far, in order."""
        return [name for name, _ in self.requests]

    def __enter__(self) -> "Loopback":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(owner: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            asked = self.headers.get("Range")
            owner.requests.append((name, asked))
            if name in owner.hang:
                owner.stop.wait(30)
                return
            if name not in owner.files:
                self.send_error(404, "Not Found")
                return
            data = owner.files[name]
            start = int(asked.split("=")[1].split("-")[0]) if asked and name not in owner.ignore_range else 0
            if start >= len(data) and start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if name in owner.drop_once:
                owner.drop_once.discard(name)
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server():
    """A running :class:`Loopback` server for one test."""
    with Loopback() as s:
        yield s


@pytest.fixture
def read_only(tmp_path):
    """A folder that refuses new files: a mode-555 folder, or for root (who writes anywhere else)
    a path under /sys; the test is skipped where there is neither."""
    if os.geteuid() != 0:
        target = tmp_path / "read-only"
        target.mkdir()
        target.chmod(0o555)
        yield target
        target.chmod(0o755)
    elif Path("/sys").is_dir():
        yield Path("/sys/pixelwise-download-test")
    else:
        pytest.skip("no read-only folder available to this user")
