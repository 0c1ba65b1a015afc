#!/usr/bin/env bash
# Sets up lgsp-bus on a fresh Debian 12 machine (Python 3.11, root) and runs it or its tests.
#   bash ops/bootstrap.sh run    — install, then run the bus's main job on the embedded default
#   bash ops/bootstrap.sh test   — install, start the servers the tests need, run every check
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"
shift || true

venv=.venv
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    rm -rf "$venv"; "$python" -m venv "$venv"
  fi
fi
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q -e '.[dev]'
export PATH="$PWD/$venv/bin:$PATH"
samples="${LGSP_SAMPLES_DIR:-$(cd .. && pwd)/shared/edxml-samples}"

case "$mode" in
  run)
    echo "== the official sample packets, checked as the bus would at its door"
    lgsp validate "$samples"/*.edxml || echo "(see README: edoc.edxml carries a test-tool placeholder instead of base64)"
    echo "== lgsp demo: four systems' simulators, documents and statuses through the bus"
    exec lgsp demo "$@"
    ;;
  test)
    bash ops/install-services.sh
    # a third-party adapter distribution, installed as a vendor's would be (tests/adapters)
    python -m pip install -q -e tests/external_adapter
    ruff check bus adapters tests
    mypy
    python -m pytest "$@"
    ;;
  *)
    echo "usage: bash ops/bootstrap.sh run|test [args...]" >&2
    exit 2
    ;;
esac
