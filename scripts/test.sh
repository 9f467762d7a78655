#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs the whole suite.
#   - system packages the tests start for real: redis-server (and Prometheus' tools)
#   - a virtualenv in .venv with the gateway, the bundled services and test tools
# Extra arguments go to pytest (e.g. scripts/test.sh -k proxy).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    elif command -v sudo >/dev/null; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        echo "the tests need these system packages: ${missing[*]}" >&2
        exit 1
    fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[ml,test]'
exec .venv/bin/pytest "$@"
