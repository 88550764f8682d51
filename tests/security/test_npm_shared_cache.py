"""npm's shared download cache (sandbox/npmcache.py) with the real npm in bubblewrap as an
unprivileged uid, against a registry on this host's loopback (nothing leaves the machine):
a second session's install of a package another session downloaded reads it from the shared
store (the registry sees no second tarball request), and a session cannot poison the store."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding.sandbox.npmcache import (
    CONTENT,
    MARKER,
    SHARED_NPM,
    integrity,
    link_shared,
    promote,
    promote_from_sandbox,
)
from tests.conftest import searchable
from tests.package_archives import npm_tarball

NOBODY = 65534
pytestmark = pytest.mark.skipif(
    not (shutil.which("npm") and shutil.which("bwrap") and os.geteuid() == 0),
    reason="needs npm, bwrap and root (to run the sessions as another uid)",
)


GOOD = npm_tarball("module.exports = (s) => 'padded:' + s;\n")
EVIL = npm_tarball("module.exports = () => 'POISONED';\n")


class Registry:
    """A minimal npm registry (one package) on 127.0.0.1 that counts tarball downloads."""

    def __init__(self) -> None:
        self.tarball_gets = 0
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                port = self.server.server_address[1]
                if self.path.endswith(".tgz"):
                    registry.tarball_gets += 1
                    body = GOOD
                elif self.path.strip("/") == "leftpadx":
                    dist = {
                        "tarball": f"http://127.0.0.1:{port}/leftpadx/-/leftpadx-1.0.0.tgz",
                        "integrity": integrity(GOOD),
                    }
                    body = json.dumps(
                        {
                            "name": "leftpadx",
                            "dist-tags": {"latest": "1.0.0"},
                            "versions": {
                                "1.0.0": {"name": "leftpadx", "version": "1.0.0", "dist": dist}
                            },
                        }
                    ).encode()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def registry() -> Iterator[Registry]:
    r = Registry()
    yield r
    r.httpd.shutdown()
    r.httpd.server_close()


def _session_dir(root: Path, name: str, shared: Path) -> Path:
    """A session's private npm cache, owned by the sandbox uid, linked to the shared store."""
    cache = root / name / "npm"
    cache.mkdir(parents=True)
    link_shared(cache, shared, SHARED_NPM)
    for d, _, files in os.walk(root / name):
        os.lchown(d, NOBODY, NOBODY)
        for f in files:
            os.lchown(os.path.join(d, f), NOBODY, NOBODY)
    return cache


def _in_session(cache: Path, shared: Path, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` as the sandbox uid: the private cache at ~/.npm, the store read-only."""
    argv = [
        "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
        "bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        "--tmpfs", "/home", "--tmpfs", "/opt",
        "--bind", str(cache), "/home/coder/.npm",
        "--ro-bind", str(shared), SHARED_NPM,
        "--setenv", "HOME", "/home/coder", "--setenv", "npm_config_cache", "/home/coder/.npm",
        "--setenv", "npm_config_update_notifier", "false", "--chdir", "/tmp",
        "sh", "-c", script,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def _install(cache: Path, shared: Path, registry: Registry) -> str:
    p = _in_session(
        cache,
        shared,
        "mkdir p && cd p && echo '{}' > package.json && "
        f"npm install leftpadx --registry {registry.url} --no-audit --no-fund >/dev/null && "
        "node -e \"console.log(require('leftpadx')('x'))\"",
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def _blob_path(shared: Path, data: bytes) -> Path:
    import hashlib

    h = hashlib.sha512(data).hexdigest()
    return shared / CONTENT / h[:2] / h[2:4] / h[4:]


def test_a_second_session_installs_from_the_shared_store_without_a_download(
    tmp_path: Path, registry: Registry
) -> None:
    searchable(tmp_path)
    shared = tmp_path / "shared" / "npm"
    shared.mkdir(parents=True)
    one = _session_dir(tmp_path, "one", shared)
    assert _install(one, shared, registry) == "padded:x"
    assert registry.tarball_gets == 1
    # The host promotes the first session's verified downloads.
    result = promote(one, shared)
    assert result.promoted >= 1 and result.rejected == 0
    assert _blob_path(shared, GOOD).read_bytes() == GOOD
    two = _session_dir(tmp_path, "two", shared)
    assert _install(two, shared, registry) == "padded:x"
    assert registry.tarball_gets == 1  # read from the shared store


def test_a_session_cannot_poison_the_shared_store(tmp_path: Path, registry: Registry) -> None:
    searchable(tmp_path)
    shared = tmp_path / "shared" / "npm"
    shared.mkdir(parents=True)
    one = _session_dir(tmp_path, "one", shared)
    _install(one, shared, registry)
    promote(one, shared)
    good_blob = _blob_path(shared, GOOD)
    # An attacker's session: writes into the store (read-only), replaces its link to the good
    # blob with other content under the same digest, plants a blob under a digest it does not
    # have, plants one for a package nobody downloaded yet (its digest: the evil tarball's own
    # path, but a name's digest comes from the registry, never from the store), and a link to
    # a host file.
    evil = _session_dir(tmp_path, "evil", shared)
    rel = good_blob.relative_to(shared)
    p = _in_session(
        evil,
        shared,
        f"echo x > {SHARED_NPM}/{rel} 2>/dev/null && echo store-writable; "
        f"rm -f ~/.npm/{rel} && printf 'EVIL' > ~/.npm/{rel}; "
        f"mkdir -p ~/.npm/{CONTENT}/00/00 && printf 'EVIL' > ~/.npm/{CONTENT}/00/00/{'0' * 124}; "
        f"ln -s /etc/passwd ~/.npm/{CONTENT}/00/00/{'1' * 124}; echo done",
    )
    assert p.stdout.strip() == "done", (p.stdout, p.stderr)
    result = promote(evil, shared)
    assert result.promoted == 0 and result.rejected >= 2
    assert good_blob.read_bytes() == GOOD
    assert not (shared / CONTENT / "00").exists()
    # Another session still gets the good package, from the store.
    gets = registry.tarball_gets
    fresh = _session_dir(tmp_path, "fresh", shared)
    assert _install(fresh, shared, registry) == "padded:x"
    assert registry.tarball_gets == gets
    # A blob planted with content matching its own digest is harmless: found only by it.
    assert EVIL != GOOD


# --- the host's promotion, attacked from inside a running sandbox -------------------------------

SECRET = b"a host file the session must not get into the store\n"


def _digest_parts(data: bytes) -> tuple[str, str, str]:
    import hashlib

    h = hashlib.sha512(data).hexdigest()
    return h[:2], h[2:4], h[4:]


class Sandbox:
    """A process as the sandbox uid in its own mount namespace with a tmpfs home (as the
    runtime's sandboxes: the host reaches it only through ``/proc/PID/root``), after ``setup``
    ran in it."""

    def __init__(self, setup: str) -> None:
        argv = [
            "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--tmpfs", "/home", "--dir", "/home/coder", "--setenv", "HOME", "/home/coder",
            "sh", "-c", f"{setup}\necho ready; exec sleep 120",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", (line, self.proc.stderr.read() if self.proc.stderr else "")
        # bwrap's child: the process inside the namespaces (the sleep).
        deadline = time.monotonic() + 5
        self.pid = 0
        while not self.pid and time.monotonic() < deadline:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            if children.split():
                self.pid = int(children.split()[0])
            else:
                time.sleep(0.02)
        assert self.pid

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _plant(data: bytes) -> str:
    """Shell that writes ``data`` into ~/.npm as a blob under its own digest."""
    import base64 as b64

    a, b, rest = _digest_parts(data)
    return (
        f"mkdir -p ~/.npm/{CONTENT}/{a}/{b} && "
        f"echo {b64.b64encode(data).decode()} | base64 -d > ~/.npm/{CONTENT}/{a}/{b}/{rest}"
    )


@pytest.mark.parametrize("link_at", [".npm", "_cacache", "sha512", "first level", "blob"])
def test_promotion_never_follows_a_link_the_session_made(tmp_path: Path, link_at: str) -> None:
    """The session replaces a folder (or the blob) of its cache with a symbolic link to an
    absolute path: resolved by the host, that path is the host's, where a valid blob of a host
    file waits (its name is its digest). Nothing of it may reach the store, while the session's
    genuine download next to it does."""
    searchable(tmp_path)
    host = tmp_path / "host" / ".npm"
    a, b, rest = _digest_parts(SECRET)
    (host / CONTENT / a / b).mkdir(parents=True)
    (host / CONTENT / a / b / rest).write_bytes(SECRET)
    for d in [tmp_path / "host", *(tmp_path / "host").rglob("*")]:
        os.chmod(d, 0o755 if d.is_dir() else 0o644)
    store = tmp_path / "store"
    store.mkdir()
    target = {
        ".npm": f"ln -s {host} ~/.npm",
        "_cacache": f"mkdir -p ~/.npm && ln -s {host}/_cacache ~/.npm/_cacache",
        "sha512": f"mkdir -p ~/.npm/_cacache/content-v2 && ln -s {host}/{CONTENT} ~/.npm/{CONTENT}",
        "first level": f"mkdir -p ~/.npm/{CONTENT} && ln -s {host}/{CONTENT}/{a} ~/.npm/{CONTENT}/{a}",
        "blob": f"mkdir -p ~/.npm/{CONTENT}/{a}/{b} && "
        f"ln -s {host}/{CONTENT}/{a}/{b}/{rest} ~/.npm/{CONTENT}/{a}/{b}/{rest}",
    }[link_at]
    genuine = link_at not in (".npm", "_cacache", "sha512")
    setup = target + (f"\n{_plant(GOOD)}" if genuine else "")
    sb = Sandbox(setup)
    try:
        result = promote_from_sandbox(sb.pid, "/home/coder", store)
    finally:
        sb.close()
    assert not (store / CONTENT / a / b / rest).exists()
    assert not list(store.rglob(rest))
    if genuine:
        ga, gb, grest = _digest_parts(GOOD)
        assert (store / CONTENT / ga / gb / grest).read_bytes() == GOOD
        assert result.promoted == 1 and result.rejected >= 1
        assert (store / MARKER).exists()  # running agents link the new blob
    else:
        assert result.promoted == 0


def test_promotion_of_a_sandbox_copies_verified_blobs_only(tmp_path: Path) -> None:
    """From a running sandbox: a genuine download is promoted; a blob whose bytes are not its
    digest's, one with a second (hard) link, a FIFO and a file over the size cap are not, and
    the reads stop at the cap (a 4 GiB sparse file is not read)."""
    searchable(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    big = GOOD * 40
    a, b, rest = _digest_parts(b"the real package")
    fa, fb, frest = _digest_parts(b"fifo")
    ha, hb, hrest = _digest_parts(b"hard")
    sa, sb_, srest = _digest_parts(b"sparse")
    setup = " && ".join(
        [
            _plant(GOOD),
            _plant(big),
            f"mkdir -p ~/.npm/{CONTENT}/{a}/{b} && printf EVIL > ~/.npm/{CONTENT}/{a}/{b}/{rest}",
            f"mkdir -p ~/.npm/{CONTENT}/{fa}/{fb} && mkfifo ~/.npm/{CONTENT}/{fa}/{fb}/{frest}",
            f"mkdir -p ~/.npm/{CONTENT}/{ha}/{hb} && printf hard > ~/.npm/{CONTENT}/{ha}/{hb}/{hrest}"
            f" && ln ~/.npm/{CONTENT}/{ha}/{hb}/{hrest} ~/.npm/elsewhere",
            f"mkdir -p ~/.npm/{CONTENT}/{sa}/{sb_} && "
            f"truncate -s 4G ~/.npm/{CONTENT}/{sa}/{sb_}/{srest}",
        ]
    )
    sb = Sandbox(setup)
    try:
        t0 = time.monotonic()
        result = promote_from_sandbox(
            sb.pid, "/home/coder", store, max_blob_bytes=len(big) - 1, max_total_bytes=10**6
        )
        took = time.monotonic() - t0
    finally:
        sb.close()
    ga, gb, grest = _digest_parts(GOOD)
    assert (store / CONTENT / ga / gb / grest).read_bytes() == GOOD
    assert oct((store / CONTENT / ga / gb / grest).stat().st_mode & 0o777) == "0o444"
    assert result.promoted == 1 and result.rejected == 5, result
    promoted = [p for p in store.rglob("*") if p.is_file() and p.name != MARKER]
    assert len(promoted) == 1, promoted  # no temporary file left behind either
    assert took < 10  # a FIFO did not block it


def test_promotion_stops_at_the_byte_budget(tmp_path: Path) -> None:
    searchable(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    other = npm_tarball("module.exports = 2;\n")
    sb = Sandbox(f"{_plant(GOOD)} && {_plant(other)}")
    try:
        result = promote_from_sandbox(
            sb.pid, "/home/coder", store, max_total_bytes=max(len(GOOD), len(other))
        )
    finally:
        sb.close()
    assert result.promoted == 1 and result.rejected == 1, result


def test_promotion_refuses_a_recycled_pid(tmp_path: Path) -> None:
    """The pid no longer belongs to the sandbox (``still_ours`` false): nothing is read."""
    searchable(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    sb = Sandbox(_plant(GOOD))
    try:
        result = promote_from_sandbox(sb.pid, "/home/coder", store, still_ours=lambda: False)
    finally:
        sb.close()
    assert result.promoted == 0 and not list(store.iterdir())
