#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh Debian/Ubuntu machine with Python 3.11:
# installs the pinned Python requirements and Chromium (for the browser end-to-end test), then
# runs pytest offline. Extra arguments go to pytest (e.g. `bash scripts/test.sh -k hub`).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r requirements-dev.txt

if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Chromium for the browser test (Debian package 'chromium')"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
python -m pytest "$@"
