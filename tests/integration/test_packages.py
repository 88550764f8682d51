"""pip installs into the workspace (a user site at /workspace/.local: PEP 668 does not block it),
a wheelhouse shared read-only by every session of the host, and npm installs into the
workspace's node_modules with its bin folder on PATH. No network: the packages are a wheel this
test builds (one in the shared folder, one inside the sandbox) and an npm tarball packed inside."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import LiveServer, UserClient, module_live_server, register_user
from tests.integration.test_run_interactive import Follower
from tests.package_archives import npm_tarball, wheel

pytestmark = pytest.mark.sandbox


SHARED = Path(tempfile.mkdtemp(prefix="cc-pkgcache-"))
os.chmod(SHARED, 0o755)
(SHARED / "pip").mkdir(mode=0o755)
_name, _data = wheel("shared_demo", "1.0", "VALUE = 'from the shared cache'\n")
(SHARED / "pip" / _name).write_bytes(_data)
os.chmod(SHARED / "pip" / _name, 0o644)


# The shared npm store (sandbox/npmcache.py): one tarball under its SHA-512, as another
# session's promoted download or the operator's ``npm cache add`` leaves it.
NPM_TGZ = npm_tarball("module.exports = (s) => 'from the shared store:' + s;\n")
_digest = hashlib.sha512(NPM_TGZ).hexdigest()
_blob = SHARED / "npm" / "_cacache" / "content-v2" / "sha512" / _digest[:2] / _digest[2:4]
_blob.mkdir(parents=True)
(_blob / _digest[4:]).write_bytes(NPM_TGZ)
for _d in [SHARED / "npm", *(SHARED / "npm").rglob("*")]:
    os.chmod(_d, 0o755 if _d.is_dir() else 0o644)

server = module_live_server("pkgs", package_cache_dir=str(SHARED))


def run(u: UserClient, sid: str, path: str, source: str) -> tuple[dict[str, object], str, str]:
    r = u.client.post(f"/api/workspace/{sid}/file/{path}", json={"content": source})
    assert r.status_code in (200, 201), r.text
    r = u.client.post(f"/api/sessions/{sid}/run", json={"path": path})
    assert r.status_code == 202, r.text
    f = Follower(u.client, r.json()["events"])
    result = f.result()
    return result, f.text("stdout"), f.text("stderr")


LOCAL_WHEEL_NAME, LOCAL_WHEEL = wheel("local_demo", "2.0", "VALUE = 'installed in the workspace'\n")

INSTALL = f"""
import base64, os, subprocess, sys
os.makedirs('wheels', exist_ok=True)
open('wheels/{LOCAL_WHEEL_NAME}', 'wb').write(base64.b64decode({base64.b64encode(LOCAL_WHEEL).decode()!r}))
for pkg, extra in (('local_demo', ['--find-links', 'wheels']), ('shared_demo', [])):
    p = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-index', *extra, pkg],
                       capture_output=True, text=True)
    print(pkg, p.returncode, p.stderr[-300:] if p.returncode else '')
try:
    open('/opt/package-cache/pip/planted.whl', 'wb').write(b'x')
    print('shared cache writable')
except OSError as e:
    print('shared cache read-only', e.errno)
"""

CHECK = """
import site, local_demo, shared_demo
print(site.USER_BASE)
print(local_demo.VALUE, '|', shared_demo.VALUE)
print(local_demo.__file__)
"""


def test_pip_installs_into_the_workspace_and_the_shared_cache_is_read_only(
    user: UserClient,
) -> None:
    sid = user.new_session()
    result, out, err = run(user, sid, "install.py", INSTALL)
    assert result["exit_code"] == 0, (out, err)
    assert "local_demo 0 \n" in out and "shared_demo 0 \n" in out, out
    assert "shared cache read-only 30" in out, out  # EROFS
    # A new process (another run) imports both: the user site lives in the workspace.
    result, out, err = run(user, sid, "check.py", CHECK)
    assert result["exit_code"] == 0, (out, err)
    lines = out.splitlines()
    assert lines[0] == "/workspace/.local"
    assert lines[1] == "installed in the workspace | from the shared cache"
    assert lines[2].startswith("/workspace/.local/lib/python3")
    # The installed package is a workspace file like any other (kept across a sandbox stop).
    files = user.client.get(f"/api/workspace/{sid}/files").json()["items"]
    assert any(i["path"].startswith(".local/lib/") and i["path"].endswith("local_demo.py")
               for i in files)  # fmt: skip
    assert not (SHARED / "pip" / "planted.whl").exists()


NPM = r"""
import json, os, subprocess
os.makedirs('pkgsrc/bin', exist_ok=True)
json.dump({"name": "hello-local", "version": "1.0.0", "bin": {"hello-local": "bin/cli.js"},
           "main": "index.js"}, open('pkgsrc/package.json', 'w'))
open('pkgsrc/index.js', 'w').write("module.exports = () => 'from node_modules';\n")
open('pkgsrc/bin/cli.js', 'w').write("#!/usr/bin/env node\nconsole.log('cli on PATH');\n")
os.chmod('pkgsrc/bin/cli.js', 0o755)
p = subprocess.run(['npm', 'pack', '--silent', './pkgsrc'], capture_output=True, text=True)
print('pack', p.returncode, p.stderr[-300:])
p = subprocess.run(['npm', 'install', '--offline', '--no-audit', './hello-local-1.0.0.tgz'],
                   capture_output=True, text=True)
print('install', p.returncode, p.stderr[-300:])
print(subprocess.run(['node', '-e', "console.log(require('hello-local')())"],
                     capture_output=True, text=True).stdout.strip())
print(subprocess.run(['hello-local'], capture_output=True, text=True).stdout.strip())
"""


def test_npm_installs_into_the_workspace_node_modules(user: UserClient) -> None:
    sid = user.new_session()
    result, out, err = run(user, sid, "npm_install.py", NPM)
    assert result["exit_code"] == 0, (out, err)
    lines = out.splitlines()
    assert lines[0].startswith("pack 0") and lines[1].startswith("install 0"), out
    assert lines[-2:] == ["from node_modules", "cli on PATH"], out
    # The sync brings the install to the DB (the agent's watcher; not necessarily before the
    # run's result): wait, bounded.
    deadline = time.monotonic() + 15
    while True:
        files = user.client.get(f"/api/workspace/{sid}/files").json()["items"]
        paths = {i["path"] for i in files}
        if "node_modules/hello-local/package.json" in paths or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "node_modules/hello-local/package.json" in paths, sorted(paths)


NPM_SHARED = r"""
import base64, hashlib, http.server, json, os, subprocess, threading, time
tgz_gets = []
INTEGRITY = '@INTEGRITY@'
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith('.tgz'):
            tgz_gets.append(self.path)  # the store should answer: refuse
            self.send_response(500); self.end_headers(); return
        port = self.server.server_address[1]
        dist = {'tarball': f'http://127.0.0.1:{port}/leftpadx/-/leftpadx-1.0.0.tgz',
                'integrity': INTEGRITY}
        body = json.dumps({'name': 'leftpadx', 'dist-tags': {'latest': '1.0.0'},
                           'versions': {'1.0.0': {'name': 'leftpadx', 'version': '1.0.0',
                                                  'dist': dist}}}).encode()
        self.send_response(200); self.send_header('content-length', str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
link = os.path.expanduser('~/.npm/_cacache/content-v2/sha512/@BLOB@')
deadline = time.monotonic() + 10
while not os.path.islink(link) and time.monotonic() < deadline:
    time.sleep(0.05)
print('linked', os.path.islink(link))
os.makedirs('app', exist_ok=True)
open('app/package.json', 'w').write('{}')
p = subprocess.run(['npm', 'install', 'leftpadx', '--registry',
                    f'http://127.0.0.1:{srv.server_address[1]}/', '--no-audit', '--no-fund'],
                   cwd='app', capture_output=True, text=True)
print('install', p.returncode, p.stderr[-300:].replace(chr(10), ' '))
print('tarball downloads', len(tgz_gets))
print(subprocess.run(['node', '-e', "console.log(require('leftpadx')('x'))"], cwd='app',
                     capture_output=True, text=True).stdout.strip())
try:
    open('/opt/package-cache/npm/planted', 'w').write('x')
    print('store writable')
except OSError as e:
    print('store read-only', e.errno)
""".replace(
    "@INTEGRITY@", "sha512-" + base64.b64encode(hashlib.sha512(NPM_TGZ).digest()).decode()
).replace("@BLOB@", f"{_digest[:2]}/{_digest[2:4]}/{_digest[4:]}")


def test_npm_install_reads_the_shared_store_and_cannot_write_it(user: UserClient) -> None:
    """No network: a registry inside the sandbox gives the package's metadata and refuses its
    tarball, which npm must take from the host's shared store."""
    sid = user.new_session()
    result, out, err = run(user, sid, "npm_shared.py", NPM_SHARED)
    assert result["exit_code"] == 0, (out, err)
    lines = out.splitlines()
    assert lines[0] == "linked True", out
    assert lines[1].startswith("install 0"), out
    assert lines[2] == "tarball downloads 0", out
    assert lines[3] == "from the shared store:x", out
    assert lines[4] == "store read-only 30", out  # EROFS
    assert not (SHARED / "npm" / "planted").exists()


# --- the shared npm store filled from a session's own downloads --------------------------------


def _sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


# A package session A downloads from a registry (on its sandbox's loopback), and one nobody
# downloaded, whose digest A plants with other bytes (a poisoned cache entry).
PROMOTED_TGZ = npm_tarball(name="sharedpad", source="module.exports = (s) => 'sharedpad:' + s;\n")
VICTIM_TGZ = npm_tarball(name="victimpkg", source="module.exports = () => 'genuine victim';\n")
POISON_TGZ = npm_tarball(name="victimpkg", source="module.exports = () => 'POISONED';\n")
_v = hashlib.sha512(VICTIM_TGZ).hexdigest()

NPM_A = (
    r"""
import base64, http.server, json, os, subprocess, threading
TGZ = base64.b64decode('@TGZ@')
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        port = self.server.server_address[1]
        if self.path.endswith('.tgz'):
            body = TGZ
        else:
            dist = {'tarball': f'http://127.0.0.1:{port}/sharedpad/-/sharedpad-1.0.0.tgz',
                    'integrity': '@SRI@'}
            body = json.dumps({'name': 'sharedpad', 'dist-tags': {'latest': '1.0.0'},
                               'versions': {'1.0.0': {'name': 'sharedpad', 'version': '1.0.0',
                                                      'dist': dist}}}).encode()
        self.send_response(200); self.send_header('content-length', str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
os.makedirs('app', exist_ok=True)
json.dump({'name': 'app', 'version': '1.0.0'}, open('app/package.json', 'w'))
p = subprocess.run(['npm', 'install', 'sharedpad', '--registry',
                    f'http://127.0.0.1:{srv.server_address[1]}/', '--no-audit', '--no-fund'],
                   cwd='app', capture_output=True, text=True)
print('install', p.returncode, p.stderr[-300:].replace(chr(10), ' '))
print(subprocess.run(['node', '-e', "console.log(require('sharedpad')('a'))"], cwd='app',
                     capture_output=True, text=True).stdout.strip())
# The poisoned entry: another package's digest, other bytes.
d = os.path.expanduser('~/.npm/_cacache/content-v2/sha512/@VA@/@VB@')
os.makedirs(d, exist_ok=True)
open(f'{d}/@VREST@', 'wb').write(base64.b64decode('@POISON@'))
print('planted')
print(base64.b64encode(open('app/package-lock.json', 'rb').read()).decode())
""".replace("@TGZ@", base64.b64encode(PROMOTED_TGZ).decode())
    .replace("@SRI@", _sri(PROMOTED_TGZ))
    .replace("@VA@", _v[:2])
    .replace("@VB@", _v[2:4])
    .replace("@VREST@", _v[4:])
    .replace("@POISON@", base64.b64encode(POISON_TGZ).decode())
)

# Session B: no registry at all (a port nothing listens on, and --offline): the packages come
# from the lockfiles' integrity and the cache, or not at all.
NPM_B = r"""
import os, subprocess, sys, time
link = os.path.expanduser('~/.npm/_cacache/content-v2/sha512/@BLOB@')
deadline = time.monotonic() + 20
while not os.path.islink(link) and time.monotonic() < deadline:
    time.sleep(0.1)
print('linked', os.path.islink(link))
for app, pkg in (('app', 'sharedpad'), ('victim', 'victimpkg')):
    p = subprocess.run(['npm', 'ci', '--offline', '--no-audit', '--no-fund',
                        '--registry', 'http://127.0.0.1:9/'], cwd=app, capture_output=True,
                       text=True)
    out = subprocess.run(['node', '-e', f"console.log(require('{pkg}')('b'))"], cwd=app,
                         capture_output=True, text=True).stdout.strip()
    print(pkg, p.returncode, out)
"""


def _lock(name: str, data: bytes) -> str:
    import json

    return json.dumps(
        {
            "name": "app",
            "version": "1.0.0",
            "lockfileVersion": 3,
            "requires": True,
            "packages": {
                "": {"name": "app", "version": "1.0.0", "dependencies": {name: "^1.0.0"}},
                f"node_modules/{name}": {
                    "version": "1.0.0",
                    "resolved": f"http://127.0.0.1:9/{name}/-/{name}-1.0.0.tgz",
                    "integrity": _sri(data),
                },
            },
        }
    )


def test_a_download_of_one_session_serves_another_users_install_offline(
    server: LiveServer, user: UserClient
) -> None:
    """Session A (one user) installs a package from its registry and plants a poisoned entry
    in its npm cache; when A's sandbox stops, the host promotes A's verified downloads into the
    shared store. Session B (another user, no registry reachable) installs the package from the
    lockfile A wrote, offline, from the store; the poisoned entry never reached the store, so
    B's install of that package fails instead of running the attacker's code."""
    d = hashlib.sha512(PROMOTED_TGZ).hexdigest()
    store = SHARED / "npm" / "_cacache" / "content-v2" / "sha512"
    (store / d[:2] / d[2:4] / d[4:]).unlink(missing_ok=True)  # the other database's run
    sid_a = user.new_session()
    result, out, err = run(user, sid_a, "npm_a.py", NPM_A)
    assert result["exit_code"] == 0, (out, err)
    lines = out.splitlines()
    assert lines[0].startswith("install 0") and lines[1:3] == ["sharedpad:a", "planted"], out
    lock = base64.b64decode(lines[3]).decode()  # the lockfile npm wrote in A
    other = register_user(server)
    try:
        # B's sandbox runs already (its agent linked the store as it was): it links the new
        # blob when the host promotes it.
        sid_b = other.new_session()
        assert run(other, sid_b, "start.py", "print(1)")[0]["exit_code"] == 0
        r = user.client.post(f"/api/sessions/{sid_a}/sandbox/stop")
        assert r.status_code == 200, r.text
        assert (store / d[:2] / d[2:4] / d[4:]).read_bytes() == PROMOTED_TGZ
        assert not (store / _v[:2] / _v[2:4] / _v[4:]).exists()
        files = {
            "app/package.json": '{"name": "app", "version": "1.0.0", '
            '"dependencies": {"sharedpad": "^1.0.0"}}',
            "app/package-lock.json": lock,
            "victim/package.json": '{"name": "app", "version": "1.0.0", '
            '"dependencies": {"victimpkg": "^1.0.0"}}',
            "victim/package-lock.json": _lock("victimpkg", VICTIM_TGZ),
        }
        for path, content in files.items():
            r = other.client.post(f"/api/workspace/{sid_b}/file/{path}", json={"content": content})
            assert r.status_code in (200, 201), r.text
        script = NPM_B.replace("@BLOB@", f"{d[:2]}/{d[2:4]}/{d[4:]}")
        result, out, err = run(other, sid_b, "npm_b.py", script)
        assert result["exit_code"] == 0, (out, err)
        lines = out.splitlines()
        assert lines[0] == "linked True", out
        assert lines[1] == "sharedpad 0 sharedpad:b", out
        assert lines[2].startswith("victimpkg ") and not lines[2].startswith("victimpkg 0"), out
        assert "POISONED" not in out
    finally:
        other.client.close()


# --- pip from a package index, in a network-enabled session --------------------------------------

INDEX_WHEEL_NAME, INDEX_WHEEL = wheel("index_demo", "3.1", "VALUE = 'from the index'\n")

PIP_INDEX = f"""
import base64, functools, http.server, os, subprocess, sys, tempfile, threading
root = tempfile.mkdtemp()
os.makedirs(f'{{root}}/simple/index-demo')
open(f'{{root}}/simple/index-demo/{INDEX_WHEEL_NAME}', 'wb').write(
    base64.b64decode({base64.b64encode(INDEX_WHEEL).decode()!r}))
open(f'{{root}}/simple/index-demo/index.html', 'w').write(
    '<a href="{INDEX_WHEEL_NAME}">{INDEX_WHEEL_NAME}</a>')
gets = []
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *a): gets.append(self.path)
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(H, directory=root))
threading.Thread(target=srv.serve_forever, daemon=True).start()
index = f'http://127.0.0.1:{{srv.server_address[1]}}/simple'
p = subprocess.run([sys.executable, '-m', 'pip', 'install', '--index-url', index, 'index-demo'],
                   capture_output=True, text=True)
print('index_demo', p.returncode, p.stderr[-300:].replace(chr(10), ' '))
print('wheel fetched', any(g.endswith('.whl') for g in gets))
srv.shutdown(); srv.server_close()
# The index is gone now: the shared wheelhouse (PIP_FIND_LINKS) still answers.
p = subprocess.run([sys.executable, '-m', 'pip', 'install', '--index-url', index, '--retries', '0',
                    '--timeout', '2', 'shared_demo'], capture_output=True, text=True)
print('shared_demo', p.returncode, p.stderr[-300:].replace(chr(10), ' ') if p.returncode else '')
"""

PIP_CHECK = """
import index_demo, shared_demo
print(index_demo.VALUE, '|', shared_demo.VALUE, '|', index_demo.__file__)
"""


def test_pip_installs_from_an_index_in_a_network_enabled_session(user: UserClient) -> None:
    """``pip install --index-url`` of a package index (served on the sandbox's loopback by the
    test: no packet leaves the machine) lands in the workspace's user site; with the index
    down, the host's shared wheelhouse still serves its package."""
    sid = user.new_session(network_enabled=True)
    assert user.client.get(f"/api/sessions/{sid}").json()["network_enabled"] is True
    result, out, err = run(user, sid, "pip_index.py", PIP_INDEX)
    assert result["exit_code"] == 0, (out, err)
    lines = out.splitlines()
    assert lines[0] == "index_demo 0 ", out
    assert lines[1] == "wheel fetched True", out
    assert lines[2] == "shared_demo 0 ", out
    result, out, err = run(user, sid, "pip_check.py", PIP_CHECK)
    assert result["exit_code"] == 0, (out, err)
    value, shared, path = out.strip().split(" | ")
    assert (value, shared) == ("from the index", "from the shared cache"), out
    assert path.startswith("/workspace/.local/lib/python3"), out


# --- pip downloads kept per user (sandbox/pipcache.py) --------------------------------------------

USER_WHEEL_NAME, USER_WHEEL = wheel("user_demo", "4.2", "VALUE = 'from my own wheelhouse'\n")
USER_STORED = "user_demo-4.2-0-py3-none-any.whl"  # build tag 0 (sandbox/pipcache.stored_name)

PIP_USER_A = f"""
import base64, functools, http.server, os, subprocess, sys, tempfile, threading
root = tempfile.mkdtemp()
os.makedirs(f'{{root}}/simple/user-demo')
open(f'{{root}}/simple/user-demo/{USER_WHEEL_NAME}', 'wb').write(
    base64.b64decode({base64.b64encode(USER_WHEEL).decode()!r}))
open(f'{{root}}/simple/user-demo/index.html', 'w').write(
    '<a href="{USER_WHEEL_NAME}">{USER_WHEEL_NAME}</a>')
class H(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        if self.path.endswith('.whl'):  # as PyPI's files: pip's HTTP cache keeps them
            self.send_header('Cache-Control', 'max-age=365000000, immutable, public')
        super().end_headers()
    def log_message(self, fmt, *a): pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(H, directory=root))
threading.Thread(target=srv.serve_forever, daemon=True).start()
# pip caches http:// responses of a trusted host only (PyPI is https).
p = subprocess.run([sys.executable, '-m', 'pip', 'install', '--index-url',
                    f'http://127.0.0.1:{{srv.server_address[1]}}/simple', '--trusted-host',
                    '127.0.0.1', 'user-demo'], capture_output=True, text=True)
print('install', p.returncode, p.stderr[-300:].replace(chr(10), ' '))
"""

# The index is down (nothing listens on port 9): only a wheelhouse can answer.
PIP_OFFLINE = """
import os, subprocess, sys
print('wheelhouse', sorted(os.listdir('/opt/package-cache/pip-user'))
      if os.path.isdir('/opt/package-cache/pip-user') else None)
p = subprocess.run([sys.executable, '-m', 'pip', 'install', '--index-url',
                    'http://127.0.0.1:9/simple', '--retries', '0', '--timeout', '2', 'user-demo'],
                   capture_output=True, text=True)
print('install', p.returncode)
if p.returncode == 0:  # a new interpreter: the user site did not exist when this one started
    sys.stdout.flush()
    subprocess.run([sys.executable, '-c', 'import user_demo; print(user_demo.VALUE)'])
try:
    open('/opt/package-cache/pip-user/planted.whl', 'wb').write(b'x')
    print('writable')
except OSError as e:
    print('read-only', e.errno)
"""


def test_a_users_pip_download_serves_their_next_session_offline_and_no_one_elses(
    server: LiveServer, user: UserClient
) -> None:
    """User A installs a package from an index in session 1; its sandbox stops and the host
    promotes the wheel (verified) into A's own wheelhouse. In A's session 2, the index down,
    ``pip install`` of the package succeeds from that wheelhouse (read-only). User B's session
    does not see it and its install fails."""
    shutil.rmtree(SHARED / "pip-users", ignore_errors=True)  # the other database's run
    sid1 = user.new_session(network_enabled=True)
    result, out, err = run(user, sid1, "pip_a.py", PIP_USER_A)
    assert result["exit_code"] == 0, (out, err)
    assert out.splitlines()[0] == "install 0 ", out
    r = user.client.post(f"/api/sessions/{sid1}/sandbox/stop")
    assert r.status_code == 200, r.text
    mine = [d for d in (SHARED / "pip-users").iterdir()]
    assert len(mine) == 1 and os.listdir(mine[0]) == [USER_STORED], mine
    assert (mine[0] / USER_STORED).read_bytes() == USER_WHEEL

    sid2 = user.new_session(network_enabled=True)
    result, out, err = run(user, sid2, "pip_offline.py", PIP_OFFLINE)
    assert result["exit_code"] == 0, (out, err)
    assert out.splitlines() == [
        f"wheelhouse ['{USER_STORED}']",
        "install 0",
        "from my own wheelhouse",
        "read-only 30",
    ], (out, err)

    other = register_user(server)
    try:
        sid_b = other.new_session(network_enabled=True)
        result, out, err = run(other, sid_b, "pip_offline.py", PIP_OFFLINE)
        assert result["exit_code"] == 0, (out, err)
        lines = out.splitlines()
        assert lines[0] == "wheelhouse None", out
        assert lines[1].startswith("install ") and lines[1] != "install 0", out
    finally:
        other.client.close()
