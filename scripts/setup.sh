#!/usr/bin/env bash
# Sets up everything vsexcolor's tests need on a fresh Linux machine:
# a .venv with Python >= 3.12, vsexcolor installed editable with its test and review extras,
# `vapoursynth config` for that venv (vspipe needs it), Debian's ffmpeg, and Debian's chromium
# with its chromium-driver (the review page's browser test; nothing is downloaded at test time).
set -euo pipefail
cd "$(dirname "$0")/.."

is_py312() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }

find_python() {
    local c
    for c in ${PYTHON:-} python3.13 python3.12 python3; do
        if command -v "$c" >/dev/null 2>&1 && is_py312 "$c"; then echo "$c"; return; fi
    done
    # pyenv installs are not on PATH unless selected; look for them directly.
    for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
        if [ -x "$c" ] && is_py312 "$c"; then echo "$c"; return; fi
    done
    echo "setup: no Python >= 3.12 found (looked for \$PYTHON, python3.13, python3.12, python3 and pyenv versions);" \
         "VapourSynth's wheels need 3.12 or newer: install one and set PYTHON=/path/to/python3.12" >&2
    exit 1
}

# PyPI's torch for Linux is a CUDA build: about 6 GB in the venv, more while pip unpacks it.
# Checking first turns pip's "No space left on device" deep in an install into advice.
NEED_GB=8
check_disk() {
    local free_gb
    free_gb=$(df -P -k . | awk 'NR == 2 { print int($4 / 1048576) }')
    if [ "$free_gb" -lt "$NEED_GB" ]; then
        echo "setup: only ${free_gb} GB free where .venv goes ($(pwd)); installing torch needs about" \
             "${NEED_GB} GB: free some space, or clone vsexcolor onto a larger disk" >&2
        exit 1
    fi
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
    check_disk
fi
if [ ! -x .venv/bin/python ]; then
    py=$(find_python)
    echo "setup: creating .venv with $py" >&2
    "$py" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,review]'
.venv/bin/vapoursynth config >/dev/null

if ! command -v ffmpeg >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing Debian's ffmpeg" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
    else
        echo "setup: ffmpeg is missing; install it (sudo apt-get install ffmpeg) for the vspipe | ffmpeg tests" >&2
    fi
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing Debian's chromium and chromium-driver" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "setup: chromium is missing; install it (sudo apt-get install chromium chromium-driver) for the review" \
             "page's browser test" >&2
    fi
fi
echo "setup: done; run the tests with: .venv/bin/python -m pytest" >&2
