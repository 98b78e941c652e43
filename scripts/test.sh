#!/usr/bin/env bash
# Set up .venv and run the test suite (a few minutes on 2 CPU cores). The run-report test renders
# HTML in headless Chromium, and one data test reads the full Fashion-MNIST set: both installed
# here from Debian when missing and apt can (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MISSING=()
command -v chromium >/dev/null || MISSING+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || MISSING+=(dataset-fashion-mnist)
if [ ${#MISSING[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${MISSING[@]}" >/dev/null) \
    || echo "${MISSING[*]} could not be installed: the tests that need them will be skipped" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
