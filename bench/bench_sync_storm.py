"""Figure of issue 12, finding 6: /api/health/ and a second user's own request (their session list)
during a storm of small files made in another user's terminal, against the same requests on the
idle server in the same run (before and after the storm, interleaved as idle / storm / idle). Also
how long the second user waits for a new terminal, idle and during the storm.

    .venv/bin/python bench/bench_sync_storm.py [--files 100000] [--rate 20]

Target: health p99 during the storm < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ccserver import Server, pct, write_result


async def open_terminal(srv: Server, headers: dict[str, str], sid: str, tid: str) -> float:
    """Seconds from connecting to the shell's first prompt output."""
    t = time.perf_counter()
    async with websockets.connect(
        f"{srv.ws}/api/sessions/{sid}/terminals/{tid}", additional_headers=headers
    ) as ws:
        while True:
            m = await asyncio.wait_for(ws.recv(), 120)
            if isinstance(m, bytes) and m.strip():
                return time.perf_counter() - t


async def sample(
    client: httpx.AsyncClient, headers: dict[str, str], until: asyncio.Event, rate: float
) -> dict[str, list[float]]:
    """Poll health and the second user's session list at ``rate`` Hz until ``until`` is set."""
    out: dict[str, list[float]] = {"health": [], "user": []}
    while not until.is_set():
        for key, url, h in (("health", "/api/health/", {}), ("user", "/api/sessions/", headers)):
            t = time.perf_counter()
            r = await client.get(url, headers=h)
            assert r.status_code == 200, r.text
            out[key].append((time.perf_counter() - t) * 1000)
        await asyncio.sleep(1 / rate)
    return out


async def idle_phase(
    client: httpx.AsyncClient, headers: dict[str, str], seconds: float, rate: float
) -> dict[str, list[float]]:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await sample(client, headers, stop, rate)


async def run(files: int, rate: float) -> dict[str, object]:
    srv = Server(max_workspace_bytes=str(4 << 30))
    try:
        storm_sid = srv.new_session("storm")
        name = f"other{secrets.token_hex(4)}"
        r = httpx.post(  # not srv.client: its cookie jar would switch to this user
            f"{srv.base}/api/users/register",
            json={"username": name, "email": f"{name}@example.com", "password": "benchmark-pass"},
        )
        other = {"Cookie": f"cc_session={r.json()['token']}"}
        made = httpx.post(f"{srv.base}/api/sessions/", json={"name": "o"}, headers=other)
        other_sid = str(made.json()["uuid"])
        async with httpx.AsyncClient(base_url=srv.base, timeout=120) as client:
            # Warm-up: both sandboxes' first starts are not what is measured.
            await open_terminal(srv, other, other_sid, "warm")
            idle = await idle_phase(client, other, 5, rate)
            idle_term = await open_terminal(srv, other, other_sid, "idle")
            async with websockets.connect(
                f"{srv.ws}/api/sessions/{storm_sid}/terminals/t", additional_headers=srv.headers
            ) as term:
                await term.recv()
                program = f"[open(f'storm/f{{i}}', 'w').write('x') for i in range({files})]"
                t0 = time.perf_counter()
                await term.send(f'mkdir storm && python3 -c "{program}"\r'.encode())
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample(client, other, stop, rate))
                await asyncio.sleep(2)
                storm_term = await open_terminal(srv, other, other_sid, "storm")
                while True:  # the command's end waits for its files to be synced
                    m = await asyncio.wait_for(term.recv(), 1800)
                    if isinstance(m, str) and json.loads(m).get("type") == "command":
                        break
                storm_s = time.perf_counter() - t0
                stop.set()
                storm = await sampler
            after = await idle_phase(client, other, 5, rate)
        listing = srv.client.get(f"/api/workspace/{storm_sid}/files")
        assert listing.status_code == 200, listing.text[:300]
        items = len(listing.json()["items"])
    finally:
        srv.stop()
    result: dict[str, object] = {"files": files, "storm_s": round(storm_s, 1), "items": items}
    for key in ("health", "user"):
        base = idle[key] + after[key]
        during = storm[key]
        result[key] = {
            "idle_p50_ms": round(pct(base, 50), 1),
            "idle_p99_ms": round(pct(base, 99), 1),
            "storm_p50_ms": round(pct(during, 50), 1),
            "storm_p99_ms": round(pct(during, 99), 1),
            "storm_max_ms": round(max(during), 1),
            "p99_ratio": round(pct(during, 99) / max(pct(base, 99), 0.01), 2),
            "samples_idle": len(base),
            "samples_storm": len(during),
        }
    result["terminal_open_idle_ms"] = round(idle_term * 1000, 1)
    result["terminal_open_storm_ms"] = round(storm_term * 1000, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=20)
    args = ap.parse_args()
    res = asyncio.run(run(args.files, args.rate))
    print(f"{res['files']} files in {res['storm_s']} s; {res['items']} items stored")
    print("request        idle p50/p99      storm p50/p99/max        p99 ratio")
    for key in ("health", "user"):
        v = res[key]
        assert isinstance(v, dict)
        print(
            f"{key:<14} {v['idle_p50_ms']:>6} / {v['idle_p99_ms']:<7} "
            f"{v['storm_p50_ms']:>6} / {v['storm_p99_ms']} / {v['storm_max_ms']:<10} "
            f"{v['p99_ratio']}x"
        )
    print(
        f"second user's new terminal: idle {res['terminal_open_idle_ms']} ms, "
        f"during the storm {res['terminal_open_storm_ms']} ms"
    )
    write_result("sync_storm", res)


if __name__ == "__main__":
    main()
