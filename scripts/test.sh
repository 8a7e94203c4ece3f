#!/usr/bin/env bash
# Bootstraps if needed, configures and builds Release, and runs the test suites.
# Usage: scripts/test.sh [extra ctest arguments, e.g. -L unit or -LE oracle]
# Environment: BUILD_DIR (default build), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}

scripts/bootstrap.sh
# A new build folder uses Ninja (it starts a target's sources before the libraries it links are done); an existing
# one keeps the generator it was configured with.
generator=()
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
echo "[test] configuring ${BUILD_DIR} (Release${generator:+, Ninja})"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "${generator[@]}"
echo "[test] building with ${JOBS} jobs"
start=$(date +%s)
cmake --build "$BUILD_DIR" -j "$JOBS"
echo "[test] build took $(( $(date +%s) - start )) s"
echo "[test] running tests"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" "$@"
