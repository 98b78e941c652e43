#!/usr/bin/env bash
# Set up .venv and run the test suite (a few minutes on 2 CPU cores). The run-report test renders
# HTML in headless Chromium: installed here from Debian when missing and apt can (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "chromium could not be installed: the report rendering test will be skipped" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
