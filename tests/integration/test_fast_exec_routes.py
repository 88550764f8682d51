"""The lean waited judge submissions (api/fastexec.py) answer exactly as the FastAPI routes do.

Two servers (each backend, each its own database): the lean path on and off
(``http_fast_exec_routes``). Every request, good or bad, goes to both (with each server's own
user and API token); status, JSON body (minus ids and times), ``Retry-After`` and the security
headers must match, never a 5xx but the queue's 503, and the lean server must have answered the
well-formed ones itself (and handed the rest to FastAPI).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from coolcoding.api.fastexec import FastExecRoutes, judge0_query, parse_model
from coolcoding.schemas.executions import ExecutionIn
from tests.conftest import LiveServer, register_user, searchable, start_live_server

PY = 'print("hello")\n'
# Volatile parts of an answer: ids, times and measurements.
VOLATILE = {
    "id", "token", "created_at", "started_at", "completed_at", "finished_at", "wall_ms", "cpu_ms",
    "memory_kb", "time", "wall_time", "memory", "retry_after",
}  # fmt: skip
LIMITS = {
    "exec_max_source_bytes": 2000,
    "exec_max_stdin_bytes": 1000,
    "exec_max_testcases": 3,
    "exec_rate_limit_per_minute": 6,
    "judge0_enabled": True,
}


@dataclass
class Peer:
    """One server and a fresh user of it: their login and API tokens."""

    server: LiveServer
    login: str
    api: str
    submission: str = ""  # a Judge0 token of this user's, for "{tok}" in a case's URL

    @property
    def lean(self) -> FastExecRoutes:
        app: Any = self.server.app.middleware_stack
        while not isinstance(app, FastExecRoutes):
            app = app.app
        return app


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    root = searchable(tmp_path_factory.mktemp(f"fastexec-{request.param}"))
    stops = []
    try:
        out = []
        for fast in (True, False):
            data = root / ("fast" if fast else "slow")
            data.mkdir()
            srv, stop = start_live_server(request.param, data, http_fast_exec_routes=fast, **LIMITS)
            stops.append(stop)
            out.append(srv)
        yield out[0], out[1]
    finally:
        for stop in stops:
            stop()


def peer(server: LiveServer) -> Peer:
    user = register_user(server, "fx")
    r = user.client.post("/api/tokens", json={"name": "t"})
    assert r.status_code == 201, r.text
    return Peer(server, user.token, str(r.json()["token"]))


def peers(servers: tuple[LiveServer, LiveServer]) -> tuple[Peer, Peer]:
    return peer(servers[0]), peer(servers[1])


def strip(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: strip(v) for k, v in body.items() if k not in VOLATILE}
    if isinstance(body, list):
        return [strip(v) for v in body]
    return body


# A request: (path with query, body, auth kind, extra headers). Auth kinds: "bearer" (login
# token), "cookie", "api" (X-Auth-Token), "api-bearer", "none", "bad", "login-as-api".
Case = tuple[str, Any, str, dict[str, str]]


def send(p: Peer, case: Case, method: str = "POST") -> httpx.Response:
    url, body, auth, extra = case
    url = url.replace("{tok}", p.submission)
    headers = {
        "bearer": {"Authorization": f"Bearer {p.login}"},
        "cookie": {"Cookie": f"{p.server.settings.session_cookie_name}={p.login}"},
        "api": {"X-Auth-Token": p.api},
        "api-bearer": {"Authorization": f"Bearer {p.api}"},
        "login-as-api": {"X-Auth-Token": p.login},
        "bad": {"Authorization": "Bearer nope", "X-Auth-Token": "nope"},
        "none": {},
    }[auth]
    headers = {**headers, **extra}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    if not isinstance(body, bytes) and "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"
    with httpx.Client(base_url=p.server.base_url, timeout=60) as c:
        if method == "GET":
            return c.get(url, headers=headers)
        return c.post(url, content=content, headers=headers)


def same(
    pair: tuple[Peer, Peer], case: Case, *, taken: bool, method: str = "POST"
) -> httpx.Response:
    before = pair[0].lean.taken
    fast, slow = send(pair[0], case, method), send(pair[1], case, method)
    where = (case, fast.text, slow.text)
    assert fast.status_code == slow.status_code, where
    assert fast.status_code < 500 or fast.json().get("error") == "queue_full", where
    assert fast.headers.get("content-type") == slow.headers.get("content-type"), where
    # Retry-After counts down between the two requests: a second apart at most.
    waits = [r.headers.get("retry-after") for r in (fast, slow)]
    assert (waits[0] is None) == (waits[1] is None), where
    if waits[0] is not None:
        assert abs(int(waits[0]) - int(str(waits[1]))) <= 1, where
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert fast.headers.get(name) == slow.headers.get(name) is not None, name
    # Each peer's own submission token in a URL echoed back (a 404's "no route <path>") as {tok}.
    texts = [
        r.text.replace(p.submission, "{tok}") if p.submission else r.text
        for p, r in zip(pair, (fast, slow), strict=True)
    ]
    if "json" in (fast.headers.get("content-type") or ""):
        assert strip(json.loads(texts[0])) == strip(json.loads(texts[1])), where
    else:
        assert texts[0] == texts[1], where
    assert pair[0].lean.taken - before == int(taken), where
    return fast


NATIVE = "/api/executions?wait=true"
JUDGE0 = "/judge0/submissions?wait=true"
HELLO = {"language": "python", "source": PY}
HELLO0 = {"source_code": PY, "language_id": 71}
JSON = {"Content-Type": "application/json"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_good_submissions_answer_alike(servers: tuple[LiveServer, LiveServer]) -> None:
    pair = peers(servers)
    cases: list[Case] = [
        (NATIVE, HELLO, "bearer", {}),
        (NATIVE, HELLO, "cookie", {}),
        (NATIVE, {**HELLO, "stdin": "x", "limits": {"cpu_s": 2}}, "api-bearer", {}),
        (
            NATIVE,
            {
                "language": "python",
                "source": "input()\nprint(2)",
                "testcases": [
                    {"stdin": "a\n", "expected_output": "2\n"},
                    {"stdin": "b\n", "expected_output": "3\n"},
                ],
            },
            "bearer",
            {},
        ),
        (JUDGE0, HELLO0, "api", {}),
        (JUDGE0 + "&base64_encoded=true", {"source_code": b64(PY), "language_id": 71}, "api", {}),
        (JUDGE0 + "&fields=*", {**HELLO0, "language_id": "71"}, "api-bearer", {}),
        (JUDGE0 + "&fields=stdout,status&base64_encoded=false", HELLO0, "api", {}),
    ]
    for case in cases:
        r = same(pair, case, taken=True)
        body = r.json()
        assert body.get("verdict", "accepted") != "internal_error", body
    pair = peers(servers)
    r = same(pair, (NATIVE, HELLO, "bearer", {}), taken=True)
    assert r.status_code == 200 and r.json()["verdict"] == "accepted"
    r = same(pair, (JUDGE0 + "&fields=*", HELLO0, "api", {}), taken=True)
    assert r.status_code == 201 and r.json()["status"]["id"] == 3


def test_bad_native_submissions_answer_alike(servers: tuple[LiveServer, LiveServer]) -> None:
    pair = peers(servers)
    handed: list[Case] = [
        (NATIVE, HELLO, "none", {}),  # no login: FastAPI's 401
        (NATIVE, b"{not json", "bearer", JSON),
        (NATIVE, b"", "bearer", JSON),
        (
            NATIVE,
            b'{"language": "python", "source": "x", "limits": {"cpu_s": NaN}}',
            "bearer",
            JSON,
        ),
        (NATIVE, b"\xff\xfe", "bearer", JSON),
        (NATIVE, b'"a string"', "bearer", JSON),
        (NATIVE, [HELLO], "bearer", {}),
        (NATIVE, {"language": 5, "source": PY}, "bearer", {}),
        (NATIVE, {"language": "python", "source": 5}, "bearer", {}),
        (NATIVE, {**HELLO, "surprise": 1}, "bearer", {}),
        (NATIVE, {**HELLO, "limits": {"cpu_s": -1}}, "bearer", {}),
        (NATIVE, {**HELLO, "limits": {"gpus": 1}}, "bearer", {}),
        (NATIVE, {**HELLO, "testcases": "x"}, "bearer", {}),
        (NATIVE, {**HELLO, "checker": {"type": "psychic"}}, "bearer", {}),
        (NATIVE, {**HELLO, "dependencies": ["x" * 201]}, "bearer", {}),
        (NATIVE, {"language": "x" * 40, "source": PY}, "bearer", {}),
        (NATIVE, {"language": "cobol", "source": PY}, "bearer", {}),  # the ids' pattern
        (NATIVE, {}, "bearer", {}),
        (NATIVE, HELLO, "bearer", {"Content-Type": "text/plain"}),
        ("/api/executions?wait=true&wait=true", HELLO, "bad", {}),
        ("/api/executions?wait=false", {"language": "cobol", "source": PY}, "bearer", {}),
        ("/api/executions?wait=maybe", HELLO, "bearer", {}),
        # pydantic refuses a lone surrogate where a length is checked: FastAPI's 422
        (NATIVE, b'{"language": "python", "files": {"\\ud800.py": "pass"}}', "bearer", JSON),
    ]
    taken: list[Case] = [
        (NATIVE, HELLO, "bad", {}),  # an unknown token: 401 from the lean path's own check
        (NATIVE, HELLO, "api", {}),  # X-Auth-Token is not a login: no token, FastAPI's 401
        (NATIVE, {"language": "python", "source": "   \n"}, "bearer", {}),
        (NATIVE, {"language": "python", "source": PY, "files": {"a.py": PY}}, "bearer", {}),
        (NATIVE, {"language": "python"}, "bearer", {}),
        (
            NATIVE,
            {"language": "python", "files": {"a.py": PY, "b.py": PY}, "entry": "c.py"},
            "bearer",
            {},
        ),
        (NATIVE, {"language": "python", "files": {"../a.py": PY}}, "bearer", {}),
        (NATIVE, {"language": "python", "source": "#" * 2001}, "bearer", {}),
        (NATIVE, {**HELLO, "stdin": "x" * 1001}, "bearer", {}),
        (NATIVE, {**HELLO, "testcases": [{"stdin": ""}] * 4}, "bearer", {}),
        (NATIVE, {**HELLO, "limits": {"cpu_s": 1e9}}, "bearer", {}),
        (NATIVE, {**HELLO, "limits": {"memory_mb": 10**12}}, "bearer", {}),
        (NATIVE, {**HELLO, "dependencies": ["not a pin"]}, "bearer", {}),
        (NATIVE, {**HELLO, "checker": {"type": "program"}}, "bearer", {}),
        # a lone surrogate (json.loads takes it; UTF-8 cannot hold it)
        (NATIVE, b'{"language": "python", "source": "print(\\"\\ud800\\")"}', "bearer", JSON),
        (NATIVE, b'{"language": "python", "source": "pass", "stdin": "\\udc00"}', "bearer", JSON),
        (
            NATIVE,
            b'{"language": "python", "source": "pass", "expected_output": "\\udc00"}',
            "bearer",
            JSON,
        ),
        (
            NATIVE,
            b'{"language": "python", "source": "pass", "testcases": [{"stdin": "\\ud800"}]}',
            "bearer",
            JSON,
        ),
    ]
    for case in handed:
        same(pair, case, taken=False)
    for case in taken:
        # "api" carries no login: FastAPI answers it (the lean path needs a token to take it).
        same(pair, case, taken=case[2] != "api")


def test_bad_judge0_submissions_answer_alike(servers: tuple[LiveServer, LiveServer]) -> None:
    pair = peers(servers)
    handed: list[Case] = [
        (JUDGE0, HELLO0, "none", {}),
        (JUDGE0, b"{", "api", JSON),
        (JUDGE0, {"language_id": 71}, "api", {}),
        (JUDGE0, {"source_code": PY, "language_id": "python"}, "api", {}),
        (JUDGE0, {**HELLO0, "cpu_time_limit": 0}, "api", {}),
        (JUDGE0 + "&base64_encoded=yes", HELLO0, "api", {}),
        (JUDGE0 + "&base64_encoded=true&base64_encoded=false", HELLO0, "api", {}),
        (JUDGE0 + "&fields=stdout,nonsense", HELLO0, "api", {}),  # 400 after the job ran
        (JUDGE0 + "&fields=" + "x" * 2001, HELLO0, "api", {}),
        (JUDGE0 + "&callback_url=x", HELLO0, "api", {}),
        ("/judge0/submissions/?wait=true", HELLO0, "api", {}),
        ("/judge0/submissions?wait=true&%ZZ", HELLO0, "api", {}),
        ("/judge0/submissions?wait=false", {"source_code": PY, "language_id": 1}, "api", {}),
        (JUDGE0, b'{"source_code": "\\ud800", "language_id": 71}', "api", JSON),
    ]
    taken: list[Case] = [
        (JUDGE0, HELLO0, "bad", {}),
        (JUDGE0, HELLO0, "login-as-api", {}),  # a login token is not an API token
        (JUDGE0, {"source_code": PY, "language_id": 9999}, "api", {}),
        (JUDGE0, {**HELLO0, "compiler_options": "-O3"}, "api", {}),
        (JUDGE0, {**HELLO0, "enable_network": True, "number_of_runs": 3}, "api", {}),
        (JUDGE0 + "&base64_encoded=true", HELLO0, "api", {}),  # not base64
        (JUDGE0 + "&base64_encoded=true", {"source_code": "/w==", "language_id": 71}, "api", {}),
        (
            JUDGE0 + "&base64_encoded=true",
            {**HELLO0, "source_code": b64(PY), "stdin": "%%"},
            "api",
            {},
        ),
        (JUDGE0, {"source_code": "#" * 2001, "language_id": 71}, "api", {}),
        (JUDGE0, {**HELLO0, "stdin": "x" * 1001}, "api", {}),
        (JUDGE0, {**HELLO0, "memory_limit": 1e15}, "api", {}),
        (JUDGE0, {**HELLO0, "callback_url": "file:///etc/passwd"}, "api", {}),
        (JUDGE0, b'{"source_code": "pass", "language_id": 71, "stdin": "\\ud800"}', "api", JSON),
    ]
    for case in handed:
        same(pair, case, taken=False)
    for case in taken:
        same(pair, case, taken=True)


def test_judge0_gets_answer_alike(servers: tuple[LiveServer, LiveServer]) -> None:
    pair = peers(servers)
    other = peers(servers)
    for p in (*pair, *other):
        r = send(p, ("/judge0/submissions?wait=true", {**HELLO0, "stdin": "x"}, "api", {}))
        assert r.status_code == 201, r.text
        p.submission = r.json()["token"]
    one = "/judge0/submissions/{tok}"
    taken: list[Case] = [
        (one, None, "api", {}),
        (one, None, "api-bearer", {}),
        (one + "?fields=*", None, "api", {}),
        (one + "?base64_encoded=true&fields=stdout,stdin,status", None, "api", {}),
        (one + "?base64_encoded=false", None, "api", {}),
        ("/judge0/submissions/8d0b5e3c-5f6e-4b7a-9c1d-2e3f4a5b6c7d", None, "api", {}),
        ("/judge0/submissions/not-a-uuid", None, "api", {}),
        (one, None, "bad", {}),
        (one, None, "login-as-api", {}),
    ]
    handed: list[Case] = [
        (one, None, "none", {}),
        (one + "?fields=nope", None, "api", {}),
        (one + "?wait=true", None, "api", {}),
        (one + "?base64_encoded=yes", None, "api", {}),
        (one + "?fields=*&fields=*", None, "api", {}),
        ("/judge0/submissions/batch?tokens={tok}", None, "api", {}),
        ("/judge0/submissions/batch", None, "api", {}),
        ("/judge0/submissions/{tok}/x", None, "api", {}),
    ]
    for case in taken:
        same(pair, case, taken=True, method="GET")
    for case in handed:
        same(pair, case, taken=False, method="GET")
    # Another user's submission: 404 like a missing one, on both paths.
    for p, q in ((pair[0], other[0]), (pair[1], other[1])):
        p.submission = q.submission
    r = same(pair, (one, None, "api", {}), taken=True, method="GET")
    assert r.status_code == 404


def test_the_rate_limit_and_a_full_queue_answer_alike(
    servers: tuple[LiveServer, LiveServer],
) -> None:
    pair = peers(servers)
    for _ in range(LIMITS["exec_rate_limit_per_minute"]):
        same(pair, (NATIVE, {"language": "python", "source": "pass"}, "bearer", {}), taken=True)
    r = same(pair, (NATIVE, HELLO, "bearer", {}), taken=True)
    assert r.status_code == 429 and r.headers["retry-after"]
    same(pair, (JUDGE0, HELLO0, "api", {}), taken=True)  # one user's limit, both APIs
    pair = peers(servers)
    queues = [p.server.platform.executions.queue for p in pair]
    sizes = [q.max_size for q in queues]
    try:
        for q in queues:
            q.max_size = 0
        r = same(pair, (NATIVE, HELLO, "bearer", {}), taken=True)
        assert r.status_code == 503 and r.json()["error"] == "queue_full"
        same(pair, (JUDGE0, HELLO0, "api", {}), taken=True)
    finally:
        for q, size in zip(queues, sizes, strict=True):
            q.max_size = size


def test_a_revoked_api_token_is_refused_by_the_lean_path(
    servers: tuple[LiveServer, LiveServer],
) -> None:
    p = peer(servers[0])
    assert send(p, (JUDGE0, HELLO0, "api", {})).status_code == 201
    with httpx.Client(base_url=p.server.base_url, timeout=30) as c:
        auth = {"Authorization": f"Bearer {p.login}"}
        [tok] = [t for t in c.get("/api/tokens", headers=auth).json() if t["name"] == "t"]
        assert c.delete(f"/api/tokens/{tok['id']}", headers=auth).status_code == 204
    before = p.lean.taken
    r = send(p, (JUDGE0, HELLO0, "api", {}))
    assert r.status_code == 401 and p.lean.taken == before + 1


def test_the_lean_readers_refuse_what_fastapi_would_read_otherwise() -> None:
    assert judge0_query(b"wait=true") == (False, None)
    assert judge0_query(b"wait=true&base64_encoded=true&fields=*") == (True, "*")
    assert judge0_query(b"", wait=False) == (False, None)
    assert judge0_query(b"fields=stdout&base64_encoded=true", wait=False) == (True, "stdout")
    for raw in (b"wait=true", b"wait=false", b"fields=*&fields=*", b"x=1"):
        assert judge0_query(raw, wait=False) is None, raw
    for raw in (b"", b"wait=True", b"wait=1", b"wait=true&wait=true", b"wait=true&x=1",
                b"wait=true&base64_encoded=1", b"wait=true&fields=nope", b"wait=true&&",
                b"wait=true&fields=" + b"a" * 2001, b"wait=true&\xff=1"):  # fmt: skip
        assert judge0_query(raw) is None, raw
    assert parse_model(ExecutionIn, b'{"language": "python", "source": "x"}') is not None
    for raw in (b"", b"{", b"[]", b"\xff", b'{"language": "python", "source": 1}'):
        assert parse_model(ExecutionIn, raw) is None, raw
