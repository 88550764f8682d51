"""pip installs into the workspace (a user site at /workspace/.local: PEP 668 does not block it),
a wheelhouse shared read-only by every session of the host, and npm installs into the
workspace's node_modules with its bin folder on PATH. No network: the packages are a wheel this
test builds (one in the shared folder, one inside the sandbox) and an npm tarball packed inside."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer, UserClient, module_live_server, register_user
from tests.integration.test_run_interactive import Follower

pytestmark = pytest.mark.sandbox


def wheel(name: str, version: str, module_source: str) -> tuple[str, bytes]:
    """A minimal pure-Python wheel (PEP 427) for ``name``."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": module_source.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
    return f"{name}-{version}-py3-none-any.whl", buf.getvalue()


SHARED = Path(tempfile.mkdtemp(prefix="cc-pkgcache-"))
os.chmod(SHARED, 0o755)
(SHARED / "pip").mkdir(mode=0o755)
_name, _data = wheel("shared_demo", "1.0", "VALUE = 'from the shared cache'\n")
(SHARED / "pip" / _name).write_bytes(_data)
os.chmod(SHARED / "pip" / _name, 0o644)


def npm_tarball(source: str) -> bytes:
    """A package ``leftpadx@1.0.0`` as npm packs it."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (
            ("package/package.json", b'{"name": "leftpadx", "version": "1.0.0"}'),
            ("package/index.js", source.encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


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


@pytest.fixture
def user(server: LiveServer) -> Iterator[UserClient]:
    u = register_user(server)
    yield u
    u.client.close()


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
