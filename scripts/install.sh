#!/usr/bin/env bash
# Installs everything speechlstm needs on a Debian/Ubuntu machine with Python >= 3.10:
# Debian packages (libsndfile, espeak-ng and flite for synthetic speech, sox), then the package
# itself in editable mode with the test extra (pytest, and the CPU build of torch as a test oracle).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsndfile1 espeak-ng flite sox time >/dev/null
python3 -m pip install -q -e ".[test]"
