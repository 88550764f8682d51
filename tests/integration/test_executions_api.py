"""Languages, judge jobs, batches, rate limits and runs in a session, over real HTTP against a live
server (SQLite and PostgreSQL) with real sandboxes."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, UserClient, register_user, searchable, start_live_server

pytestmark = pytest.mark.sandbox

HELLO = 'print("hello")\n'


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    srv, stop = start_live_server(
        str(request.param), searchable(tmp_path_factory.mktemp(f"exec-{request.param}"))
    )
    yield srv
    stop()


def wait_finished(c: httpx.Client, eid: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = c.get(f"/api/executions/{eid}").json()
        if body["status"] == "finished":
            return dict(body)
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def sse_events(c: httpx.Client, url: str) -> list[tuple[float, str, dict[str, Any]]]:
    """(arrival time, event, data) of every server-sent event until ``result``."""
    out: list[tuple[float, str, dict[str, Any]]] = []
    event = ""
    with c.stream("GET", url, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((time.monotonic(), event, json.loads(line[6:])))
                if event == "result":
                    break
    return out


def test_languages_are_listed_with_their_versions(server: LiveServer) -> None:
    r = httpx.get(f"{server.base_url}/api/languages")
    assert r.status_code == 200
    langs = {lang["id"]: lang for lang in r.json()}
    assert set(langs) == {"python", "javascript", "bash", "c", "cpp", "java", "rust"}
    for lang in langs.values():
        assert lang["available"] and lang["version"], lang
    assert langs["c"]["compiled"] and not langs["python"]["compiled"]
    assert ".rs" in langs["rust"]["extensions"]


def test_wait_true_answers_with_the_result(user: UserClient) -> None:
    r = user.client.post(
        "/api/executions?wait=true",
        json={
            "language": "python",
            "source": "print(input()[::-1])",
            "stdin": "abc\n",
            "expected_output": "cba",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "finished" and body["verdict"] == "accepted"
    assert body["stdout"] == "cba\n" and body["exit_code"] == 0
    assert body["wall_ms"] > 0 and body["cpu_ms"] > 0 and body["memory_kb"] > 0
    assert body["limits"]["cpu_s"] == user.server.settings.exec_default_cpu_s


def test_the_wait_answer_is_what_the_database_holds(user: UserClient) -> None:
    """``?wait=true`` answers from the rows the server kept in memory (no read-back): every
    field must be what a later read from the database gives, and the 202 answer of a job
    submitted without waiting must still show it queued, not a worker's later state."""
    jobs = [
        {"language": "python", "source": "import sys\nprint(input())\nsys.stderr.write('e')",
         "stdin": "x\n", "expected_output": "x", "limits": {"cpu_s": 2}},
        {"language": "c", "source": "int main(){return 3;}"},
        {"language": "bash", "source": "echo hi", "expected_output": "no"},
    ]  # fmt: skip
    for job in jobs:
        r = user.client.post("/api/executions?wait=true", json=job)
        assert r.status_code == 200, r.text
        answered = r.json()
        stored = user.client.get(f"/api/executions/{answered['id']}").json()
        assert answered == stored
        assert stored["status"] == "finished" and stored["created_at"] and stored["started_at"]
    r = user.client.post("/api/executions", json={"language": "bash", "source": "sleep 0.3"})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    assert wait_finished(user.client, r.json()["id"])["verdict"] == "accepted"


def test_without_wait_answers_202_then_the_result_can_be_polled(user: UserClient) -> None:
    r = user.client.post(
        "/api/executions",
        json={
            "language": "c",
            "files": {"src/main.c": '#include <stdio.h>\nint main(){puts("hi");}'},
            "limits": {"cpu_s": 1, "memory_mb": 64},
        },
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("queued", "running", "finished")
    body = wait_finished(user.client, r.json()["id"])
    assert body["verdict"] == "accepted" and body["stdout"] == "hi\n"
    assert body["entry"] == "src/main.c" and body["limits"]["memory_mb"] == 64


def test_a_compile_error_is_reported_with_the_compiler_output(user: UserClient) -> None:
    r = user.client.post(
        "/api/executions?wait=true", json={"language": "rust", "source": "fn main() { x }"}
    )
    body = r.json()
    assert body["verdict"] == "compilation_error"
    assert "cannot find value `x`" in body["compile_output"]


def test_a_crash_reports_the_signal(user: UserClient) -> None:
    src = "int main(void){ volatile int *p = 0; return *p; }"
    body = user.client.post(
        "/api/executions?wait=true", json={"language": "c", "source": src}
    ).json()
    assert body["verdict"] == "runtime_error"
    assert body["signal"] == 11 and body["signal_name"] == "SIGSEGV"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"language": "cobol", "source": "x"}, 422, "validation_error"),
        ({"language": "python", "source": "  \n"}, 400, "empty_source"),
        ({"language": "python"}, 400, "invalid_source"),
        ({"language": "python", "source": "x", "files": {"a.py": "x"}}, 400, "invalid_source"),
        ({"language": "python", "files": {"../a.py": "x"}}, 400, "invalid_path"),
        ({"language": "python", "files": {"a.py": "1", "b.py": "2"}}, 400, "entry_required"),
        ({"language": "python", "source": "x", "limits": {"cpu_s": 1000}}, 400, "limit_too_high"),
        (
            {"language": "python", "source": "x", "limits": {"memory_mb": 10**6}},
            400,
            "limit_too_high",
        ),
        ({"language": "python", "source": "x", "limits": {"cpu_s": -1}}, 422, "validation_error"),
        ({"language": "python", "source": "x", "limits": {"gpu": 1}}, 422, "validation_error"),
        ({"language": "python", "source": "#" * (1024 * 1024 + 1)}, 413, "source_too_large"),
        (
            {"language": "python", "source": "x", "dependencies": ["requests"]},
            400,
            "invalid_dependency",
        ),
        (
            {"language": "c", "source": "x", "dependencies": ["z==1"]},
            400,
            "dependencies_unsupported",
        ),
        (
            {"language": "python", "source": "x", "dependencies": "requests==1"},
            422,
            "validation_error",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(
    user: UserClient, payload: dict[str, Any], status: int, code: str
) -> None:
    r = user.client.post("/api/executions", json=payload)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and r.json()["message"]


def test_oversized_stdin_is_refused(user: UserClient) -> None:
    big = "x" * (user.server.settings.exec_max_stdin_bytes + 1)
    r = user.client.post(
        "/api/executions", json={"language": "python", "source": HELLO, "stdin": big}
    )
    assert r.status_code == 413 and r.json()["error"] == "stdin_too_large"


def test_executions_are_listed_newest_first_and_only_to_their_owner(
    user: UserClient, server: LiveServer
) -> None:
    ids = user.client.post(
        "/api/executions/batch",
        json={"jobs": [{"language": "bash", "source": f"echo {i}"} for i in range(3)]},
    ).json()["ids"]
    for eid in ids:
        wait_finished(user.client, eid)
    page = user.client.get("/api/executions?limit=2").json()
    assert [e["id"] for e in page["items"]] == [ids[2], ids[1]]
    assert page["next_offset"] == 2 and page["items"][0]["stdout"] is None
    rest = user.client.get("/api/executions?limit=2&offset=2").json()
    assert [e["id"] for e in rest["items"]] == [ids[0]] and rest["next_offset"] is None
    other = register_user(server)
    assert other.client.get(f"/api/executions/{ids[0]}").status_code == 404
    assert (
        other.client.get(f"/api/executions/{uuid.uuid4()}").json()["error"] == "execution_not_found"
    )
    assert other.client.get("/api/executions").json()["items"] == []
    other.client.close()


def test_a_batch_of_50_is_served_in_order(user: UserClient, server: LiveServer) -> None:
    if server.backend != "sqlite":
        pytest.skip("the queue does not depend on the database; once is enough (time)")
    jobs = [
        {"language": "bash", "source": f"echo {i}", "expected_output": f"{i}\n"} for i in range(50)
    ]
    r = user.client.post("/api/executions/batch", json={"jobs": jobs})
    assert r.status_code == 202, r.text
    ids = r.json()["ids"]
    assert len(ids) == 50
    results = [wait_finished(user.client, eid, timeout=120) for eid in ids]
    assert all(b["verdict"] == "accepted" for b in results)
    assert [b["stdout"] for b in results] == [f"{i}\n" for i in range(50)]
    started = [datetime.fromisoformat(b["started_at"]) for b in results]
    workers = server.platform.executions.queue.workers
    # FIFO: job i starts no later than any job submitted `workers` places after it.
    for i in range(50 - workers):
        assert started[i] <= started[i + workers], i


# --- runs in a session, streamed -------------------------------------------------------------


def write_file(u: UserClient, sid: str, path: str, content: str) -> None:
    r = u.client.post(f"/api/workspace/{sid}/file/{path}", json={"content": content})
    assert r.status_code in (200, 201), r.text


def test_run_streams_output_as_it_is_written(user: UserClient) -> None:
    sid = user.new_session()
    write_file(
        user,
        sid,
        "main.py",
        'import sys, time\nprint("first")\ntime.sleep(1)\nprint("second", file=sys.stderr)\nprint(input())\n',
    )
    assert (
        user.client.patch(f"/api/sessions/{sid}", json={"entry_file": "main.py"}).status_code == 200
    )
    r = user.client.post(f"/api/sessions/{sid}/run", json={"stdin": "typed\n"})
    assert r.status_code == 202, r.text
    events = sse_events(user.client, r.json()["events"])
    kinds = [e[1] for e in events]
    assert kinds[-1] == "result"
    text = {k: "".join(d["data"] for _, kk, d in events if kk == k) for k in ("stdout", "stderr")}
    assert text["stdout"] == "first\ntyped\n" and text["stderr"] == "second\n"
    first_at = next(t for t, k, _ in events if k == "stdout")
    assert events[-1][0] - first_at > 0.5  # "first" arrived while the program still ran
    result = events[-1][2]
    assert result["verdict"] == "accepted" and result["exit_code"] == 0
    stored = user.client.get(f"/api/executions/{r.json()['id']}").json()
    assert stored["kind"] == "run" and stored["stdout"] == "first\ntyped\n"


def test_run_of_a_compiled_language_builds_it_first(user: UserClient) -> None:
    sid = user.new_session()
    write_file(
        user, sid, "prog/hello.c", '#include <stdio.h>\nint main(){printf("built\\n");return 3;}\n'
    )
    write_file(user, sid, "bad.cpp", "int main() { nope; }\n")
    r = user.client.post(f"/api/sessions/{sid}/run", json={"path": "prog/hello.c"})
    result = sse_events(user.client, r.json()["events"])[-1][2]
    assert result["verdict"] == "runtime_error" and result["exit_code"] == 3
    assert wait_finished(user.client, r.json()["id"])["stdout"] == "built\n"
    r = user.client.post(f"/api/sessions/{sid}/run", json={"path": "bad.cpp"})
    result = sse_events(user.client, r.json()["events"])[-1][2]
    assert result["verdict"] == "compilation_error" and "nope" in result["compile_output"]
    files = user.client.get(f"/api/workspace/{sid}/files").json()["items"]
    assert sorted(i["path"] for i in files if i["type"] == "file") == ["bad.cpp", "prog/hello.c"]


def test_run_errors(user: UserClient, server: LiveServer) -> None:
    sid = user.new_session()
    r = user.client.post(f"/api/sessions/{sid}/run", json={})
    assert r.status_code == 409 and r.json()["error"] == "no_entry_file"
    r = user.client.post(f"/api/sessions/{sid}/run", json={"path": "missing.py"})
    assert r.status_code == 409 and r.json()["error"] == "file_not_found"
    write_file(user, sid, "notes.txt", "hi")
    r = user.client.post(f"/api/sessions/{sid}/run", json={"path": "notes.txt"})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    other = register_user(server)
    r = other.client.post(f"/api/sessions/{sid}/run", json={"path": "notes.txt"})
    assert r.status_code == 404 and r.json()["error"] == "session_not_found"
    other.client.close()


def test_events_of_a_finished_judge_job_replay_its_output(user: UserClient) -> None:
    eid = user.client.post(
        "/api/executions?wait=true", json={"language": "javascript", "source": 'console.log("js")'}
    ).json()["id"]
    events = sse_events(user.client, f"/api/executions/{eid}/events")
    assert [(k, d.get("data")) for _, k, d in events[:-1]] == [("stdout", "js\n")]
    assert events[-1][2]["verdict"] == "accepted"


# --- admission: rate limit, queue bound, restart ---------------------------------------------------


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv, stop = start_live_server(
        "sqlite",
        searchable(tmp_path_factory.mktemp("exec-small")),
        exec_rate_limit_per_minute=5,
        exec_workers=1,
        exec_queue_max=3,
    )
    yield srv
    stop()


def test_rate_limit_answers_429_with_retry_after(small_server: LiveServer) -> None:
    u = register_user(small_server)
    job = {"language": "bash", "source": "true"}
    for _ in range(5):
        assert u.client.post("/api/executions?wait=true", json=job).status_code == 200
    r = u.client.post("/api/executions", json=job)
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    assert 1 <= r.json()["retry_after"] <= 60 and r.headers["Retry-After"]
    other = register_user(small_server)  # per user: someone else is not limited
    assert other.client.post("/api/executions?wait=true", json=job).status_code == 200
    u.client.close()
    other.client.close()


def test_a_full_queue_answers_503(small_server: LiveServer) -> None:
    u = register_user(small_server)
    r = u.client.post(
        "/api/executions/batch", json={"jobs": [{"language": "bash", "source": "true"}] * 4}
    )
    assert r.status_code == 503 and r.json()["error"] == "queue_full"
    u.client.close()


def test_restart_requeues_queued_jobs_and_fails_interrupted_ones(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir = searchable(tmp_path_factory.mktemp("exec-restart"))
    srv, stop = start_live_server("sqlite", data_dir, cookie_secure=False)
    u = register_user(srv)
    done = u.client.post(
        "/api/executions?wait=true", json={"language": "bash", "source": "echo again"}
    ).json()
    u.client.close()
    stop_server_keep_db(srv, stop)
    db = sqlite3.connect(data_dir / "test.db")
    db.execute(
        "UPDATE executions SET status='queued', verdict=NULL WHERE uuid=?",
        (done["id"].replace("-", ""),),
    )
    row = db.execute("SELECT * FROM executions").fetchone()
    cols = [d[0] for d in db.execute("SELECT * FROM executions").description]
    running = dict(zip(cols, row, strict=True))
    running.update(id=None, uuid=uuid.uuid4().hex, status="running")
    db.execute(
        f"INSERT INTO executions ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
        [running[c] for c in cols],
    )
    db.commit()
    db.close()
    srv2, stop2 = start_live_server("sqlite", data_dir)
    try:
        c = httpx.Client(base_url=srv2.base_url, headers={"Authorization": f"Bearer {u.token}"})
        again = wait_finished(c, done["id"])
        assert again["verdict"] == "accepted" and again["stdout"] == "again\n"
        failed = c.get(f"/api/executions/{uuid.UUID(running['uuid'])}").json()
        assert failed["verdict"] == "internal_error" and "restart" in failed["message"]
        c.close()
    finally:
        stop2()


def stop_server_keep_db(srv: LiveServer, stop: Any) -> None:
    """``stop`` also drops the database; for SQLite that is a no-op, so the file survives."""
    assert srv.backend == "sqlite"
    stop()
