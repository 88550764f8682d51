"""The access check of every workspace request (issue 8): ``AccessService.require`` (owner or
member, one Core query with an outer join on ``session_collaborators``) vs the owner-only
``SessionService.owned_ref`` it replaced (the floor), uncached and cached, on SQLite and
PostgreSQL, interleaved call by call in one run.

    .venv/bin/python bench/bench_share.py [--calls 3000] [--backends sqlite,postgres]

Each round calls, in turn: owned_ref (owner), require (owner), require (an accepted member);
once with the caches off (TTL 0: the database round trip every request makes when its entry is
cold) and once with them on. The database has 2,000 sessions and 6,000 memberships.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_database

from benchstats import ratio, summary
from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import CodeSession, SessionCollaborator, User
from coolcoding.services.access import AccessService, Role
from coolcoding.services.events import EventBus
from coolcoding.services.sessions import SessionService
from coolcoding.settings import Settings


async def fill(db: Database) -> tuple[int, int, str]:
    """2,000 sessions of 100 users, each shared with 3 others; returns (owner, member, uuid)."""
    async with db.session() as s:
        users = [
            User(username=f"b{i}{secrets.token_hex(3)}", email=f"b{i}{secrets.token_hex(3)}@x.org",
                 password_hash="x")
            for i in range(100)
        ]  # fmt: skip
        s.add_all(users)
        await s.flush()
        sessions = [CodeSession(user_id=users[i % 100].id, name=f"s{i}") for i in range(2000)]
        s.add_all(sessions)
        await s.flush()
        s.add_all(
            SessionCollaborator(
                session_id=sess.id, user_id=users[(i + k) % 100].id, role="editor",
                status="accepted",
            )
            for i, sess in enumerate(sessions)
            for k in (1, 2, 3)
        )  # fmt: skip
        await s.commit()
        target = sessions[777]
        return target.user_id, users[(777 + 1) % 100].id, str(target.uuid)


async def measure(url: str, calls: int) -> dict[str, object]:
    settings = Settings(database_url=url, environment="test")
    db = Database(settings)
    await upgrade(db.engine)
    owner, member, uuid = await fill(db)
    out: dict[str, object] = {}
    for label, ttl in (("uncached", 0.0), ("cached", 60.0)):
        sessions = SessionService(db, owner_cache_ttl_s=ttl)
        access = AccessService(db, EventBus(""), cache_ttl_s=ttl)
        series: dict[str, list[float]] = {
            "owned_ref": [],
            "require_owner": [],
            "require_member": [],
        }
        for _ in range(calls):
            for name, who in (
                ("owned_ref", owner),
                ("require_owner", owner),
                ("require_member", member),
            ):
                t0 = time.perf_counter()
                if name == "owned_ref":
                    await sessions.owned_ref(who, uuid)
                else:
                    await access.require(who, uuid, Role.EDITOR)
                series[name].append((time.perf_counter() - t0) * 1e6)
        out[label] = {
            "us": {k: summary(v) for k, v in series.items()},
            "ratio_owner_vs_owned_ref": ratio(series["require_owner"], series["owned_ref"]),
            "ratio_member_vs_owned_ref": ratio(series["require_member"], series["owned_ref"]),
        }
    await db.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--backends", default="sqlite,postgres")
    args = ap.parse_args()
    results: dict[str, object] = {"calls": args.calls}
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            test_db = make_database(backend, Path(tmp))
            try:
                results[backend] = asyncio.run(measure(test_db.url, args.calls))
            finally:
                test_db.drop()
    text = json.dumps(results, indent=2)
    print(text)
    (Path(__file__).parent / "results" / "share.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
