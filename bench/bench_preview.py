"""Preview (issue 13): time to the first byte of a page served by a program in a session,
through the platform's preview (``/api/sessions/{id}/preview/8000/``: HTTP -> server -> agent
``port.connect`` -> the program) vs a direct request to the same server from inside the
sandbox's network namespace (``nsenter --net``), interleaved in the same run. A new TCP
connection per request on both sides. Target: the proxied first byte within 20 ms of the direct.

    .venv/bin/python bench/bench_preview.py [--requests 300]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ccserver import Server, pct, write_result

APP = "bench_preview_app.py"
APP_SOURCE = """
import http.server
BODY = b"<!doctype html><h1>preview bench</h1>" + b"x" * 2000
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(BODY))); self.end_headers(); self.wfile.write(BODY)
http.server.ThreadingHTTPServer(("127.0.0.1", 8000), H).serve_forever()
"""

# Runs inside the sandbox's network namespace: one timed request per line read.
DIRECT_CLIENT = r"""
import socket, sys, time
for _ in sys.stdin:
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", 8000))
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    s.recv(1)
    first = time.perf_counter() - t0
    while s.recv(65536): pass
    s.close()
    print(first * 1000, flush=True)
"""


def proxied_ttfb(port: int, path: str, cookie: str) -> float:
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
        "Sec-Fetch-Site: same-origin\r\nConnection: close\r\n\r\n".encode()
    )
    first_byte = s.recv(1)
    first = time.perf_counter() - t0
    rest = b""
    while chunk := s.recv(65536):
        rest += chunk
    s.close()
    if not (first_byte + rest).startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"preview failed: {(first_byte + rest)[:200]!r}")
    return first * 1000


def app_pid() -> int:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if APP.encode() in (proc / "cmdline").read_bytes():
                    return int(proc.name)
            except OSError:
                continue
    raise SystemExit("the app's process was not found")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    srv = Server()
    try:
        sid = srv.new_session()
        r = srv.client.post(f"/api/workspace/{sid}/file/{APP}", json={"content": APP_SOURCE})
        assert r.status_code in (200, 201), r.text
        r = srv.client.post(f"/api/sessions/{sid}/run", json={"path": APP})
        assert r.status_code == 202, r.text
        for _ in range(300):
            ports = srv.client.get(f"/api/sessions/{sid}/ports").json()["ports"]
            if any(p["port"] == 8000 for p in ports):
                break
            time.sleep(0.1)
        else:
            raise SystemExit("the app never listened")
        direct = subprocess.Popen(
            ["nsenter", f"--net=/proc/{app_pid()}/ns/net", sys.executable, "-c", DIRECT_CLIENT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert direct.stdin is not None and direct.stdout is not None
        cookie = srv.headers["Cookie"]
        path = f"/api/sessions/{sid}/preview/8000/"
        for _ in range(20):  # warm-up (not measured)
            proxied_ttfb(srv.port, path, cookie)
        via, straight = [], []
        for _ in range(args.requests):
            via.append(proxied_ttfb(srv.port, path, cookie))
            direct.stdin.write("go\n")
            direct.stdin.flush()
            straight.append(float(direct.stdout.readline()))
        direct.stdin.close()
        direct.wait(10)
    finally:
        srv.stop()
    result = {
        "requests": args.requests,
        "proxied_ms": {"p50": statistics.median(via), "p99": pct(via, 99)},
        "direct_ms": {"p50": statistics.median(straight), "p99": pct(straight, 99)},
    }
    result["difference_p50_ms"] = result["proxied_ms"]["p50"] - result["direct_ms"]["p50"]
    result["difference_p99_ms"] = result["proxied_ms"]["p99"] - result["direct_ms"]["p99"]
    result["ratio_p50"] = result["proxied_ms"]["p50"] / max(result["direct_ms"]["p50"], 1e-6)
    print(f"{'':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("proxied", "direct"):
        d = result[f"{name}_ms"]
        print(f"{name:>10} {d['p50']:8.2f} {d['p99']:8.2f}")
    print(f"difference p50 {result['difference_p50_ms']:.2f} ms, p99 "
          f"{result['difference_p99_ms']:.2f} ms, ratio p50 {result['ratio_p50']:.1f}x "
          "(target: within 20 ms)")  # fmt: skip
    write_result("preview", result)


if __name__ == "__main__":
    main()
