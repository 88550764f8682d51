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
