"""Package installs in a session: ``pip install`` and ``npm install`` put packages in the
workspace, so they survive a sandbox stop like the user's files.

- pip: a user install (``PIP_USER=1``) with ``PYTHONUSERBASE=/workspace/.local``. Debian marks
  the system Python as externally managed (PEP 668), which also refuses user installs; that
  guard protects the system site-packages, which a sandbox cannot write anyway, so it is waived
  (``PIP_BREAK_SYSTEM_PACKAGES=1``) for installs that land in the workspace only.
  ``/workspace/.local/bin`` is on the sandbox's ``PATH`` (console scripts; after the system's).
- npm: ``npm install`` writes ``node_modules`` in the project folder (npm's default);
  ``/workspace/node_modules/.bin`` is on ``PATH`` too.
- Caches: pip's and npm's download caches are per sandbox, in the home tmpfs (writable, gone at
  stop). With ``package_cache_dir`` set, its ``pip`` folder (a wheelhouse the operator fills,
  e.g. ``pip download -d DIR/pip numpy``) is bound read-only at ``SHARED_PIP`` for every
  session and pip looks there first (``PIP_FIND_LINKS``): shared between the host's sessions,
  never written by a session (so one user cannot plant a package for another). Its ``npm``
  folder, a store of npm tarballs by SHA-512, is bound read-only at ``SHARED_NPM``; the agent
  links npm's private cache to it at start; the host fills it with the sessions' own downloads,
  each verified by its SHA-512 (sandbox/npmcache.py). A user's own pip downloads are kept in
  their own wheelhouse (``pip-users/<user id>-<created>``), bound read-only at ``SHARED_PIP_USER`` into
  that user's sessions only, after the host-wide one (sandbox/pipcache.py: why not host-wide).
- Debian's Python and Node.js packages on the host are there for every session: ``python3-flask``
  is importable and ``NODE_PATH`` holds Debian's Node.js modules (``node-express``), so the Flask
  and Express templates run without network.
"""

from __future__ import annotations

import contextlib
import os

from coolcoding.sandbox.npmcache import SHARED_NPM
from coolcoding.sandbox.pipcache import SHARED_PIP_USER, user_dir

WORKSPACE = "/workspace"
HOME = "/home/coder"
SHARED_PIP = "/opt/package-cache/pip"
DEBIAN_NODE_MODULES = "/usr/share/nodejs"


def package_env(shared_pip: bool, user_pip: bool = False) -> dict[str, str]:
    env = {
        "PYTHONUSERBASE": f"{WORKSPACE}/.local",
        "PIP_USER": "1",
        "PIP_BREAK_SYSTEM_PACKAGES": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CACHE_DIR": f"{HOME}/.cache/pip",
        "npm_config_cache": f"{HOME}/.npm",
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        # Debian's Node.js modules (node-express and what it needs): the Express template runs
        # without a download, as the Flask one does with python3-flask. A workspace's own
        # node_modules comes first (Node looks in NODE_PATH last).
        "NODE_PATH": DEBIAN_NODE_MODULES,
    }
    # The operator's host-wide wheelhouse first, then the user's own promoted downloads
    # (sandbox/pipcache.py); pip reads every folder of the (space-separated) list.
    links = [path for path, on in ((SHARED_PIP, shared_pip), (SHARED_PIP_USER, user_pip)) if on]
    if links:
        env["PIP_FIND_LINKS"] = " ".join(links)
    return env


def shared_binds(package_cache_dir: str, user: str = "") -> dict[str, str]:
    """Host folder -> sandbox path, read-only: the shared wheelhouse and npm store when
    configured (``pip/``, ``npm/`` in ``package_cache_dir``), and ``user``'s own wheelhouse
    (``pip-users/<user>``) once the host promoted some of their downloads there."""
    if not package_cache_dir:
        return {}
    binds: dict[str, str] = {}
    mine = user_dir(package_cache_dir, user) if user else None
    if mine is not None and mine.is_dir() and not mine.is_symlink():
        binds[str(mine)] = SHARED_PIP_USER
    pip_dir = os.path.join(package_cache_dir, "pip")
    if os.path.isdir(pip_dir):
        binds[pip_dir] = SHARED_PIP
    npm_dir = os.path.join(package_cache_dir, "npm")
    if os.path.isdir(package_cache_dir) and not os.path.lexists(npm_dir):
        # The store the host fills with the sessions' verified downloads (npmcache.promote).
        with contextlib.suppress(OSError):
            os.mkdir(npm_dir, 0o755)
            os.chmod(npm_dir, 0o755)  # noqa: S103 (sandbox uids read the store)
    if os.path.isdir(npm_dir):
        binds[npm_dir] = SHARED_NPM
    return binds
