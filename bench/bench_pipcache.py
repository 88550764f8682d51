"""The per-user pip wheelhouse (sandbox/pipcache.py): a second ``pip install`` of a package from
the wheelhouse the host promoted it into vs the first install from a package index on the
loopback, interleaved rounds, Debian's pip (the sandboxes' own), each install with a fresh pip
cache and target folder. Also: the host's promotion of that download (copy + checks: zip,
RECORD hashes, metadata) vs a plain file copy of the same wheel (the floor).

Run: .venv/bin/python bench/bench_pipcache.py [--rounds 10] [--mb 8] [--mbps 0]
Loopback only: the index is a local HTTP server (an index over the internet makes the first
install slower, the second is unchanged)."""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchstats import ratio, summary
from coolcoding.sandbox.pipcache import promote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.package_archives import wheel_bytes

PIP = "/usr/bin/python3"


def make_wheel(mb: int) -> tuple[str, bytes]:
    name, version = "bench_pkg", "1.0"
    files = {
        f"{name}/__init__.py": b"VALUE = 1\n",
        f"{name}/data.bin": os.urandom(mb * 1024 * 1024),
    }
    return f"{name}-{version}-py3-none-any.whl", wheel_bytes(name, version, files)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--mb", type=int, default=8)
    ap.add_argument("--mbps", type=float, default=0, help="index speed (MB/s); 0 = loopback")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pipcache-"))
    name, data = make_wheel(args.mb)
    (work / "index/simple/bench-pkg").mkdir(parents=True)
    (work / "index/simple/bench-pkg" / name).write_bytes(data)
    (work / "index/simple/bench-pkg/index.html").write_text(f'<a href="{name}">{name}</a>')
    gets: list[str] = []

    class H(http.server.SimpleHTTPRequestHandler):
        def end_headers(self) -> None:
            if self.path.endswith(".whl"):
                self.send_header("Cache-Control", "max-age=365000000, immutable, public")
            super().end_headers()

        def log_message(self, fmt: str, *a: object) -> None:
            gets.append(self.path)

        def copyfile(self, source, outputfile):  # type: ignore[no-untyped-def]
            if not args.mbps:
                return super().copyfile(source, outputfile)
            while chunk := source.read(64 * 1024):  # as a remote index at --mbps
                outputfile.write(chunk)
                time.sleep(len(chunk) / (args.mbps * 1024 * 1024))
            return None

    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(H, directory=str(work / "index"))
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    index = f"http://127.0.0.1:{srv.server_address[1]}/simple"
    (work / "store").mkdir()
    house = work / "store" / "pip-users" / "1"

    def install(tag: str, find_links: Path | None) -> tuple[float, bool]:
        cache, target = work / f"cache-{tag}", work / f"target-{tag}"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        env = {
            "PATH": os.environ["PATH"],
            "PIP_CACHE_DIR": str(cache),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        if find_links is not None:
            env["PIP_FIND_LINKS"] = str(find_links)
        before = len(gets)
        t = time.perf_counter()
        subprocess.run(
            [PIP, "-m", "pip", "install", "-q", "--target", str(target), "--index-url", index,
             "--trusted-host", "127.0.0.1", "bench-pkg"],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - t
        return elapsed, any(g.endswith(".whl") for g in gets[before:])

    first: list[float] = []
    second: list[float] = []
    promote_s: list[float] = []
    copy_s: list[float] = []
    refetched = 0
    for r in range(args.rounds):
        for which in ("first", "second") if r % 2 == 0 else ("second", "first"):
            if which == "first":
                s, _ = install("first", None)
                first.append(s)
                shutil.rmtree(house, ignore_errors=True)
                t = time.perf_counter()
                res = promote(work / "cache-first", house, quota_bytes=10**10)
                promote_s.append(time.perf_counter() - t)
                assert res.promoted == 1, res
                t = time.perf_counter()
                shutil.copyfile(work / "index/simple/bench-pkg" / name, work / "copy.whl")
                copy_s.append(time.perf_counter() - t)
            else:
                if not (house / name).exists():  # round 0's order: promote once first
                    install("seed", None)
                    promote(work / "cache-seed", house, quota_bytes=10**10)
                s, fetched = install("second", house)
                second.append(s)
                refetched += fetched
    srv.shutdown()
    load = Path("/proc/loadavg").read_text().split()[:3]
    out = {
        "wheel_bytes": len(data),
        "index_mbps": args.mbps or "loopback",
        "rounds": args.rounds,
        "first_install_s": summary(first, 3),
        "second_install_s": summary(second, 3),
        "second_vs_first": ratio(second, first),
        "second_refetched_wheel": refetched,
        "promote_s": summary(promote_s, 4),
        "plain_copy_s": summary(copy_s, 4),
        "promote_vs_copy": ratio(promote_s, copy_s),
        "loadavg": load,
    }
    print(json.dumps(out, indent=1))
    print(f"second/first p50 {statistics.median(second) / statistics.median(first):.2f}")
    suffix = f"_{args.mbps:g}mbps" if args.mbps else ""
    Path(__file__).parent.joinpath("results", f"pipcache{suffix}.json").write_text(
        json.dumps(out, indent=1) + "\n"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
