"""A loopback S3 for tests: moto's server as a subprocess (stopped by PID), behind a proxy that injects faults.

moto has no fault injection, so `FaultyProxy` sits between boto3 and moto and answers chosen requests
itself (503 SlowDown, as S3 does under load) instead of forwarding them. It records every request so a
test can show that a failed PUT was retried.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sora_assets_tests.processes import stop_process_group

SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    """`moto_server` on a free loopback port; yields its URL; stopped by its process group in `finally`."""
    port = free_port()
    log = log_path.open("w")  # noqa: SIM115 - outlives the Popen; closed in finally
    process = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise TimeoutError("moto_server did not answer within 60 s") from None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.2)  # paces the readiness poll
        yield url
    finally:
        stop_process_group(process)
        log.close()


@dataclass
class Fault:
    """Answer `times` requests whose method is `method` and whose path contains `path_part` with `status`."""

    method: str
    path_part: str
    times: int
    status: int = 503
    injected: int = 0


@dataclass
class FaultyProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status returned)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.path_part in path and fault.injected < fault.times:
                    fault.injected += 1
                    return fault
        return None

    def record(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.requests.append((method, path, status))


def _handler(proxy: FaultyProxy) -> type[BaseHTTPRequestHandler]:
    upstream_host, upstream_port = proxy.upstream.split("://", 1)[1].split(":")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _relay(self) -> None:
            body = self._read_body()
            fault = proxy.fault_for(self.command, self.path)
            if fault is not None:  # the request never reaches moto: nothing of it can be stored
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(SLOW_DOWN)))
                self.end_headers()
                self.wfile.write(SLOW_DOWN)
                proxy.record(self.command, self.path, fault.status)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection")}
            headers["Content-Length"] = str(len(body))
            connection = http.client.HTTPConnection(upstream_host, int(upstream_port), timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            finally:
                connection.close()
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                    self.send_header(key, value)
            # a HEAD answer carries the object's length, not the (empty) payload's
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            proxy.record(self.command, self.path, response.status)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

    return Handler


@contextlib.contextmanager
def faulty_proxy(upstream: str) -> Iterator[tuple[FaultyProxy, str]]:
    """A loopback proxy in a thread of this process; yields it and its URL; shut down afterwards."""
    proxy = FaultyProxy(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
