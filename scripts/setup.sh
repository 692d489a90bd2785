#!/usr/bin/env bash
# Set up the course on a fresh Debian machine (Python 3.11): system packages,
# .venv/ at the repository root, CPU-only torch, the project with pinned versions
# (constraints.txt), GPAW for the DFT part. Safe to run again: it does nothing
# when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

# System libraries GPAW builds against; Chromium for the real-browser widget tests.
apt_packages=(libxc-dev libopenblas-dev chromium)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv

# Reinstall only when the dependency files changed since the last setup.
stamp=.venv/.course-setup
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (a few minutes the first time)"
  .venv/bin/pip install -q --upgrade pip
  # torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
  .venv/bin/pip install -q torch==2.13.0
  CC=g++ .venv/bin/pip install -q -c constraints.txt -e ".[dft,test]"
  echo "$want" > "$stamp"
fi
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "setup: ready ($(.venv/bin/course --help >/dev/null && echo 'course CLI OK'))"
