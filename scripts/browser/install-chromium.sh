#!/usr/bin/env bash
# install-chromium.sh - idempotent: make Debian's headless Chromium available for evalkit's browser test
# (tests/integration/test_report_browser.py). Prints the browser's path on stdout.
#
# Installs the `chromium` package with apt-get when it is missing and we are root (the way scripts/slurm/start.sh
# installs Slurm); otherwise says what to do. A test tool's own browser download (playwright install) fails on
# machines without internet, Debian's package comes from the same mirror as the rest of the system.
set -euo pipefail
log() { printf '[evalkit-browser] %s\n' "$*" >&2; }

for b in chromium chromium-browser; do
  if p=$(command -v "$b"); then echo "$p"; exit 0; fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  log "chromium is missing: install Debian's chromium package (apt-get install chromium) or run this script as root"
  exit 1
fi
log "installing Debian's chromium (apt-get)"
export DEBIAN_FRONTEND=noninteractive
# Try without refreshing the index first: an up-to-date index makes the install a single step.
apt-get install -y -q --no-install-recommends chromium >&2 \
  || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends chromium >&2; }
command -v chromium
