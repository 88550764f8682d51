#!/usr/bin/env bash
# Idempotent install of everything the platform and its tests need, on a fresh Debian machine.
# Used by scripts/run.sh and scripts/test.sh; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: bubblewrap (sandboxes), e2fsprogs (workspace disk images), compilers/interpreters of the language registry,
# chromium for the browser tests. Root only (on a machine where we are not root, install them first).
APT_PACKAGES="bubblewrap e2fsprogs slirp4netns iproute2 python3 procps gcc g++ nodejs default-jdk-headless rustc nginx python3-numpy python3-pandas python3-scipy python3-matplotlib python3-venv python3-pip python3-flask node-express"
if [ "${COOLCODING_WITH_BROWSER:-1}" = "1" ]; then APT_PACKAGES="$APT_PACKAGES chromium"; fi
missing=""
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
# npm (sessions' `npm install`, the web build): Debian's package only where no npm came with
# Node.js (a NodeSource nodejs ships its own and conflicts with Debian's npm).
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "setup: apt-get install$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: please install these Debian packages first:$missing" >&2
    exit 1
  fi
fi

# Python: a venv in .venv with the package (editable) and its dev tools.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  rm -f .venv/.installed-*; touch "$stamp"
fi

# Web app: npm install and build when the bundle is missing or older than its sources.
if [ -f web/package.json ]; then
  if [ ! -d web/node_modules ] || [ web/package-lock.json -nt web/node_modules ]; then
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
    touch web/node_modules
  fi
  if [ ! -f web/dist/index.html ] || [ -n "$(find web/src web/index.html web/package.json web/vite.config.* -newer web/dist/index.html 2>/dev/null | head -1)" ]; then
    (cd web && npm run build --silent)
  fi
fi
