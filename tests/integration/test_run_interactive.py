"""Run in a session through the agent: input typed while the program runs, Stop that kills the
whole process group, a workspace file as stdin, compile output apart from the program's, figures
from ``plt.show()``, and no 10 s wall (SQLite and PostgreSQL, real sandboxes)."""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, UserClient, module_live_server, register_user

pytestmark = pytest.mark.sandbox

server = module_live_server("runi")

Event = tuple[str, dict[str, Any]]


def write_file(u: UserClient, sid: str, path: str, content: str) -> None:
    r = u.client.post(f"/api/workspace/{sid}/file/{path}", json={"content": content})
    assert r.status_code in (200, 201), r.text


class Follower:
    """Reads a run's server-sent events on a thread, so the test can type while it runs."""

    def __init__(self, c: httpx.Client, url: str) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []
        self._c, self._url = c, url
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        event = ""
        with self._c.stream("GET", self._url, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    self.events.put((event, json.loads(line[6:])))
                    if event == "result":
                        return

    def until(self, pred: Any, timeout: float = 60.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no such event; seen {self.seen}") from None
            self.seen.append(ev)
            if pred(ev):
                return ev

    def until_text(self, kind: str, part: str) -> None:
        """Until the ``kind`` output so far contains ``part`` (chunks split anywhere)."""
        if part not in self.text(kind):
            self.until(lambda e: e[0] == kind and part in self.text(kind) + e[1]["data"])

    def text(self, kind: str) -> str:
        return "".join(d["data"] for k, d in self.seen if k == kind)

    def result(self) -> dict[str, Any]:
        return self.until(lambda e: e[0] == "result")[1]


def start(u: UserClient, sid: str, **body: Any) -> Follower:
    r = u.client.post(f"/api/sessions/{sid}/run", json=body)
    assert r.status_code == 202, r.text
    return Follower(u.client, r.json()["events"])


def test_a_program_reads_input_typed_while_it_runs(user: UserClient) -> None:
    sid = user.new_session()
    write_file(
        user, sid, "ask.py", 'name = input("name? ")\nprint("hello", name)\nprint(input())\n'
    )
    run = start(user, sid, path="ask.py")
    run.until_text("stdout", "name?")
    r = user.client.post(f"/api/sessions/{sid}/run/stdin", json={"data": "Ada\n"})
    assert r.status_code == 200, r.text
    run.until_text("stdout", "hello Ada")
    r = user.client.post(f"/api/sessions/{sid}/run/stdin", json={"data": "bye", "eof": True})
    assert r.status_code == 200, r.text
    result = run.result()
    assert result["verdict"] == "accepted" and result["exit_code"] == 0, result
    assert run.text("stdout") == "name? hello Ada\nbye\n"
    # After its end there is no run to type into.
    r = user.client.post(f"/api/sessions/{sid}/run/stdin", json={"data": "late\n"})
    assert r.status_code == 409 and r.json()["error"] == "no_active_run"


def test_eof_without_input_ends_a_program_reading_to_the_end(user: UserClient) -> None:
    sid = user.new_session()
    write_file(user, sid, "cat.py", "import sys\nprint(len(sys.stdin.read()))\n")
    run = start(user, sid, path="cat.py")
    time.sleep(0.5)
    assert user.client.post(f"/api/sessions/{sid}/run/stdin", json={"eof": True}).status_code == 200
    assert run.result()["exit_code"] == 0 and run.text("stdout") == "0\n"


def test_stop_kills_a_busy_loop_and_its_children_at_once(user: UserClient) -> None:
    sid = user.new_session()
    write_file(
        user,
        sid,
        "spin.py",
        "import subprocess, os\n"
        "kids = [subprocess.Popen(['sleep', '1000']) for _ in range(2)]\n"
        "g = subprocess.Popen(['sh', '-c', 'setsid sleep 1001 & echo $! > grand.pid; wait'])\n"
        "open('kids.pid', 'w').write(' '.join(str(k.pid) for k in kids))\n"
        "print('spinning', flush=True)\n"
        "while True:\n    pass\n",
    )
    run = start(user, sid, path="spin.py")
    run.until_text("stdout", "spinning")
    time.sleep(0.3)  # let the grandchild write its pid
    r = user.client.post(f"/api/sessions/{sid}/run/stop")
    assert r.status_code == 200, r.text
    result = run.result()
    assert result["signal_name"] == "SIGKILL" and "Stop" in (result["message"] or ""), result
    assert result["id"] == r.json()["execution_id"]
    # Nothing it started is left: a check run finds none of the pids alive.
    write_file(
        user,
        sid,
        "check.py",
        "import os\n"
        "pids = open('kids.pid').read().split() + open('grand.pid').read().split()\n"
        "alive = []\n"
        "for p in pids:\n"
        "    try:\n        os.kill(int(p), 0)\n        alive.append(p)\n"
        "    except ProcessLookupError:\n        pass\n"
        "print('alive', alive, len(pids))\n",
    )
    check = start(user, sid, path="check.py")
    assert check.result()["exit_code"] == 0
    assert check.text("stdout") == "alive [] 3\n"
    r = user.client.post(f"/api/sessions/{sid}/run/stop")
    assert r.status_code == 409 and r.json()["error"] == "no_active_run"


def test_a_workspace_file_as_stdin(user: UserClient) -> None:
    sid = user.new_session()
    write_file(user, sid, "sum.c", '#include <stdio.h>\nint main(){int a,b;scanf("%d %d",&a,&b);'
               'printf("%d\\n",a+b);return 0;}\n')  # fmt: skip
    write_file(user, sid, "data/in put.txt", "40 2\n")
    run = start(user, sid, path="sum.c", stdin_path="data/in put.txt")
    assert run.result()["exit_code"] == 0 and run.text("stdout") == "42\n"
    r = user.client.post(f"/api/sessions/{sid}/run", json={"path": "sum.c", "stdin_path": "no.txt"})
    assert r.status_code == 409 and r.json()["error"] == "file_not_found"
    r = user.client.post(
        f"/api/sessions/{sid}/run", json={"path": "sum.c", "stdin_path": "../etc/passwd"}
    )
    assert r.status_code in (400, 422) and "path" in r.text


def test_compiler_output_is_its_own_stream_and_not_repeated(user: UserClient) -> None:
    sid = user.new_session()
    write_file(user, sid, "bad.c", "int main() { nope; }\n")
    run = start(user, sid, path="bad.c")
    result = run.result()
    assert result["verdict"] == "compilation_error"
    assert "nope" in run.text("compile") and run.text("stderr") == ""
    assert run.text("stdout") == ""
    write_file(user, sid, "ok.c", '#include <stdio.h>\nint main(){fprintf(stderr,"e\\n");'
               'printf("o\\n");return 0;}\n')  # fmt: skip
    run = start(user, sid, path="ok.c")
    assert run.result()["exit_code"] == 0
    assert run.text("stdout") == "o\n" and run.text("stderr") == "e\n" and run.text("compile") == ""


def test_a_session_run_has_no_judge_wall_limit(user: UserClient, server: LiveServer) -> None:
    sid = user.new_session()
    write_file(user, sid, "quick.py", "print(1)\n")
    r = user.client.post(f"/api/sessions/{sid}/run", json={"path": "quick.py"})
    eid = r.json()["id"]
    Follower(user.client, r.json()["events"]).result()
    limits = user.client.get(f"/api/executions/{eid}").json()["limits"]
    assert limits["wall_s"] == server.settings.session_run_wall_s > 3600


def test_plt_show_becomes_an_inline_figure(user: UserClient) -> None:
    sid = user.new_session()
    write_file(
        user,
        sid,
        "plot.py",
        "import matplotlib.pyplot as plt, numpy as np, pandas, scipy\n"
        "print('before')\nplt.plot(np.arange(10) ** 2)\nplt.show()\nprint('after')\n",
    )
    run = start(user, sid, path="plot.py")
    result = run.result()
    assert result["exit_code"] == 0, (result, run.text("stderr"))
    figures = [d for k, d in run.seen if k == "figure"]
    assert len(figures) == 1 and figures[0]["mime"] == "image/png"
    assert base64.b64decode(figures[0]["data"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert run.text("stdout") == "before\nafter\n"
    kinds = [k for k, _ in run.seen if k in ("stdout", "figure")]
    assert kinds.index("figure") > 0  # in order: after "before"


def test_another_user_cannot_type_into_or_stop_a_run(user: UserClient, server: LiveServer) -> None:
    sid = user.new_session()
    write_file(user, sid, "wait.py", "print(input())\n")
    run = start(user, sid, path="wait.py")
    time.sleep(0.5)
    other = register_user(server)
    try:
        for path, body in (("stdin", {"data": "x\n"}), ("stop", None)):
            r = other.client.post(f"/api/sessions/{sid}/run/{path}", json=body)
            assert r.status_code == 404 and r.json()["error"] == "session_not_found"
    finally:
        other.client.close()
    assert (
        user.client.post(f"/api/sessions/{sid}/run/stdin", json={"data": "mine\n"}).status_code
        == 200
    )
    assert run.result()["exit_code"] == 0 and run.text("stdout") == "mine\n"


def test_a_run_ends_with_a_clear_result_when_its_sandbox_stops(user: UserClient) -> None:
    sid = user.new_session()
    write_file(user, sid, "forever.py", "import time\nprint('up', flush=True)\ntime.sleep(10**6)\n")
    run = start(user, sid, path="forever.py")
    run.until_text("stdout", "up")
    assert user.client.post(f"/api/sessions/{sid}/sandbox/stop").status_code == 200
    result = run.result()
    assert "sandbox stopped while the program ran" in (result["message"] or ""), result
    r = user.client.post(f"/api/sessions/{sid}/run/stop")
    assert r.status_code == 409 and r.json()["error"] == "no_active_run"


def test_images_a_run_writes_are_shown_as_figures(user: UserClient) -> None:
    sid = user.new_session()
    write_file(user, sid, "old.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>")
    write_file(
        user,
        sid,
        "draw.py",
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([3, 1, 2])\nplt.savefig('out/plot.png')\n"
        "open('evil.svg', 'w').write(\"<svg xmlns='http://www.w3.org/2000/svg'>"
        '<script>alert(1)</script></svg>")\n'
        "open('fake.png', 'w').write('not a png')\nprint('saved')\n",
    )
    write_file(user, sid, "out/.keep", "")
    run = start(user, sid, path="draw.py")
    assert run.result()["exit_code"] == 0, run.text("stderr")
    figures = {d.get("path"): d for k, d in run.seen if k == "figure"}
    # The new PNG and SVG; not the unchanged SVG, not a ".png" that is not one.
    assert sorted(figures) == ["evil.svg", "out/plot.png"]
    assert figures["out/plot.png"]["mime"] == "image/png"
    assert base64.b64decode(figures["out/plot.png"]["data"]).startswith(b"\x89PNG")
    # An SVG is passed as data for an <img> (where its script never runs), never as markup.
    assert figures["evil.svg"]["mime"] == "image/svg+xml"
