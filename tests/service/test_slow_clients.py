"""Slow clients (slowloris): a client sending one byte every 2 s is closed in time.

The body's bound is the service's own (``body_timeout_seconds``, 30 s: 408, then
closed), straight to uvicorn and through nginx; the headers' bound (10 s) is
nginx's, with the configuration shipped in deploy/nginx/settlement.conf — this
very file, only its two addresses changed to the test's ports. The three slow
clients run at once: the test takes ~35 s.
"""

from __future__ import annotations

import concurrent.futures
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from service_helpers import ROOT

from settlement.engine import Tables
from settlement.service.app import create_app
from settlement.service.config import Settings

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
SHIPPED = ROOT / "deploy" / "nginx" / "settlement.conf"
DRIP_EVERY = 2.0  # seconds between two bytes
SLACK = 2.5  # a close is seen at the next byte's send or while waiting for it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(settings: Settings, service_tables: Tables) -> Iterator[int]:
    """The service under uvicorn (its default protocol) on a port of its own, in a thread."""
    app = create_app(settings, tables=service_tables)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(timeout=10)
    app.state.ctx.db.dispose()


@pytest.fixture
def proxied(served: int, tmp_path: Path) -> Iterator[int]:
    """nginx with the shipped configuration in front of the service; its port."""
    if NGINX is None:
        pytest.skip("nginx is not installed (.ci/run installs it)")
    port = free_port()
    conf = SHIPPED.read_text()
    assert "server 127.0.0.1:8000;" in conf and "listen 127.0.0.1:8080;" in conf
    conf = conf.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{served};")
    conf = conf.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
    (tmp_path / "settlement.conf").write_text(conf)
    temp = "\n".join(
        f"  {name}_temp_path {tmp_path / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"worker_processes 1;\nerror_log {tmp_path / 'error.log'};\npid {tmp_path / 'nginx.pid'};\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  access_log off;\n{temp}\n  include {tmp_path / 'settlement.conf'};\n}}\n"
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def drip(port: int, head: bytes, give_up: float = 60.0) -> tuple[float | None, bytes]:
    """Sends ``head`` then one byte every DRIP_EVERY seconds; (seconds until the peer closed, what it
    sent back), or (None, …) if it was still open after ``give_up`` seconds."""
    received = b""
    with socket.create_connection(("127.0.0.1", port)) as s:
        start = time.monotonic()
        s.sendall(head)
        while time.monotonic() - start < give_up:
            try:
                s.sendall(b"x")
            except OSError:  # reset by the peer
                return time.monotonic() - start, received
            until = time.monotonic() + DRIP_EVERY
            while (left := until - time.monotonic()) > 0:
                if select.select([s], [], [], left)[0]:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        return time.monotonic() - start, received
                    received += data
    return None, received


BODY_HEAD = (
    b"POST /v1/settlements HTTP/1.1\r\nHost: counter\r\nAuthorization: Bearer stl_000000000000_x\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
)
HEADER_HEAD = b"GET /healthz HTTP/1.1\r\nHost: counter\r\nX-Slow: "


def test_slow_bodies_and_headers_are_closed_in_time(served: int, proxied: int) -> None:
    assert _get(proxied, "/healthz").startswith(b"HTTP/1.1 200")  # the proxy passes requests
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        body_direct = pool.submit(drip, served, BODY_HEAD)
        body_proxied = pool.submit(drip, proxied, BODY_HEAD)
        headers_proxied = pool.submit(drip, proxied, HEADER_HEAD)
        results: dict[str, Any] = {
            "body, straight to uvicorn": body_direct.result(),
            "body, through nginx": body_proxied.result(),
            "headers, through nginx": headers_proxied.result(),
        }
    bounds = {"body, straight to uvicorn": 30.0, "body, through nginx": 30.0, "headers, through nginx": 10.0}
    print({name: closed_after for name, (closed_after, _) in results.items()})
    for name, (closed_after, received) in results.items():
        bound = bounds[name]
        assert closed_after is not None, f"{name}: still open after 60 s"
        assert bound - SLACK <= closed_after <= bound + SLACK, f"{name}: closed after {closed_after:.1f} s"
        if name.startswith("body"):  # the service answered before its side was closed
            assert received.startswith(b"HTTP/1.1 408"), (name, received[:200])
            assert b'"code":"request_timeout"' in received, (name, received)
    assert b"connection: close" in results["body, straight to uvicorn"][1].lower()


def _get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: counter\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out
