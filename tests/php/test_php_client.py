"""The PHP client (clients/php) tested for real: PHPUnit against a real gateway.

The gateway runs as its own process in front of the real bundled services, plus test
upstreams for the error answers (refused, slow, unhealthy, echo). PHPUnit is Debian's
`phpunit` (scripts/test.sh installs php-cli, php-curl, phpunit and Guzzle for the PSR-18
case), or clients/php/vendor/bin/phpunit after `composer install`. One pytest runner
reports everything: a PHPUnit failure, a PHP warning or a lint error fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bundled import BundledGateway
from tests.servers import Backend, free_port

ROOT = Path(__file__).resolve().parents[2]
PHP_DIR = ROOT / "clients" / "php"
TOKEN_LIFETIME = 600


def _tool(name: str) -> str:
    local = PHP_DIR / "vendor" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: scripts/test.sh installs it from Debian")
    return found


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[Backend, Backend]]:
    echo, sick = Backend("php-echo").start(), Backend("php-sick").start()
    sick.healthy = False
    yield echo, sick
    echo.stop()
    sick.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstreams: tuple[Backend, Backend]
            ) -> Iterator[BundledGateway]:
    echo, sick = upstreams
    quick = {"attempts": 0}
    gw = BundledGateway(
        tmp_path_factory.mktemp("php"),
        tenants={"acme": {"tier": "roomy", "routes": ["*"]},
                 "narrow": {"tier": "roomy", "routes": ["sentiment"]},
                 "tight": {"tier": "tight", "routes": ["*"]}},
        tiers={"roomy": {"rate": "100000/minute", "max_in_flight": 64},
               "tight": {"rate": "1/second"}},
        upstreams={
            "echo": {"targets": [{"url": echo.url}]},
            "down": {"targets": [{"url": f"http://127.0.0.1:{free_port()}"}]},
            "sick": {"targets": [{"url": sick.url}],
                     "health_check": {"path": "/healthz", "interval": 0.2, "timeout": 1,
                                      "unhealthy_threshold": 1}},
        },
        routes=[
            {"name": "echo", "match": {"path": "/test/echo"}, "upstream": "echo"},
            {"name": "echo-slow", "match": {"path": "/test/echo-slow"}, "upstream": "echo",
             "rewrite": "/slow", "retry": quick},
            {"name": "slow", "match": {"path": "/test/slow"}, "upstream": "echo",
             "rewrite": "/slow", "timeout": {"connect": 0.5, "total": 0.5}, "retry": quick},
            {"name": "down", "match": {"path": "/test/down"}, "upstream": "down", "retry": quick},
            {"name": "unhealthy", "match": {"path": "/test/unhealthy"}, "upstream": "sick"},
        ],
        env={"GATEWAY_TOKEN_LIFETIME": str(TOKEN_LIFETIME)},
    ).start()
    # The sick upstream is out once its first health check has failed.
    deadline = time.monotonic() + 10
    while httpx.get(gw.url + "/test/unhealthy", headers={
            "Authorization": f"Bearer {gw.credentials['acme'].api_key}"}).status_code != 503:
        assert time.monotonic() < deadline, "the sick upstream was never taken out"
        time.sleep(0.1)
    yield gw
    gw.stop()


def php_env(gw: BundledGateway) -> dict[str, str]:
    return {
        **os.environ,
        "GATEWAY_URL": gw.url,
        "GATEWAY_API_KEY": gw.credentials["acme"].api_key,
        "GATEWAY_NARROW_KEY": gw.credentials["narrow"].api_key,
        "GATEWAY_TIGHT_KEY": gw.credentials["tight"].api_key,
        "GATEWAY_CLIENT_ID": gw.credentials["acme"].client_id,
        "GATEWAY_CLIENT_SECRET": gw.credentials["acme"].client_secret,
        "GATEWAY_TOKEN_LIFETIME": str(TOKEN_LIFETIME),
        "GATEWAY_DOWN_URL": f"http://127.0.0.1:{free_port()}",
    }


def test_every_php_file_passes_php_lint() -> None:
    php = _tool("php")
    files = sorted(p for p in PHP_DIR.rglob("*.php") if "vendor" not in p.parts)
    assert len(files) > 20
    for path in files:
        run = subprocess.run([php, "-l", str(path)], capture_output=True, text=True)
        assert run.returncode == 0, run.stdout + run.stderr


def test_the_phpunit_suite_passes_against_a_real_gateway(gateway: BundledGateway) -> None:
    run = subprocess.run([_tool("phpunit"), "--do-not-cache-result", "--configuration",
                          str(PHP_DIR / "phpunit.xml.dist")],
                         capture_output=True, text=True, cwd=PHP_DIR, env=php_env(gateway),
                         timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "OK (" in run.stdout, output
    for noise in ("Warning:", "Notice:", "Deprecated:", "Fatal error"):
        assert noise not in output, output


def test_the_readme_quick_start_runs_as_written(gateway: BundledGateway) -> None:
    readme = (PHP_DIR / "README.md").read_text()
    example = PHP_DIR / "examples" / "quickstart.php"
    # The README shows the example file verbatim, and the commands that run it.
    assert f"`clients/php/examples/quickstart.php`:\n\n```php\n{example.read_text()}```" in readme
    assert 'php clients/php/examples/quickstart.php "I love this product"' in readme
    run = subprocess.run([_tool("php"), str(example.relative_to(ROOT)), "I love this product"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "GATEWAY_URL": gateway.url,
                              "GATEWAY_API_KEY": gateway.credentials["acme"].api_key})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("sentiment: positive")
    assert f"```\n{run.stdout}```" in readme  # the output the README shows, as it is
    assert run.stderr == ""
    down = subprocess.run([_tool("php"), str(example)], capture_output=True, text=True,
                          env={**os.environ, "GATEWAY_URL": f"http://127.0.0.1:{free_port()}",
                               "GATEWAY_API_KEY": "k"})
    assert down.returncode == 1 and "gateway error: cannot reach the gateway" in down.stderr
