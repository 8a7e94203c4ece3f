#!/usr/bin/env bash
# Installs everything llavacot needs on Debian 12: build tools and libraries from Debian's archive, and the
# pinned Python packages (torch supplies LibTorch; the rest are test oracles) from PyPI.
# Idempotent: installs only what is missing and runs `apt-get update` at most once. Safe to re-run.
# Usage (as root, or a user with sudo): scripts/bootstrap.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    log "not root and no sudo: install the packages listed in scripts/bootstrap.sh by hand"; exit 1
  fi
fi

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3 python3-pip
  ccache clang libclang-rt-14-dev
  libopencv-dev libgif-dev libsentencepiece-dev sentencepiece libyaml-cpp-dev catch2 nlohmann-json3-dev
  libpcre2-dev libspdlog-dev libfmt-dev libcli11-dev libcurl4-openssl-dev
  libopenmpi-dev openmpi-bin
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
else
  log "Debian packages: all ${#APT_PACKAGES[@]} present"
fi

PYTHON=${PYTHON:-python3}
# Compare installed versions with the pins without touching the network.
if "$PYTHON" - requirements.txt <<'PY'
import sys
from importlib import metadata
bad = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    # Local version labels (torch's "+cu132") do not change the pin.
    if have is None or have.split("+")[0] != want:
        bad.append(f"{name} (want {want}, have {have})")
if bad:
    print("[bootstrap] Python packages to install: " + ", ".join(bad))
    sys.exit(1)
PY
then
  log "Python packages: all pins satisfied"
else
  log "installing Python packages from requirements.txt (torch brings LibTorch and its CUDA libraries: a large download the first time)"
  pip_flags=(--progress-bar on)
  # Debian's own python3 refuses system-wide pip installs (PEP 668) unless told otherwise.
  if [ -f "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then
    pip_flags+=(--break-system-packages)
  fi
  $SUDO "$PYTHON" -m pip install "${pip_flags[@]}" -r requirements.txt
fi
log "done"
