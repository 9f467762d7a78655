"""`gateway openapi [--routes-file F] [--policies-dir D]`: print the document of a config.

The same `build_document` as `GET /openapi.json`, offline: a config that does not load
is reported like `gateway check` does (exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import orjson

from gateway.settings import Settings

SettingsOf = Callable[[argparse.Namespace], Settings]


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    import sys

    from gateway.config import load_config
    from gateway.openapi.document import build_document

    config = load_config(settings.routes_file, settings.policies_dir)  # ConfigError: exit 2
    document = build_document(config, args.server_url or settings.issuer_url)
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                settings_of: SettingsOf) -> None:
    p = sub.add_parser("openapi", help="print the OpenAPI 3.1 document of the config")
    p.add_argument("--routes-file")
    p.add_argument("--policies-dir")
    p.add_argument("--server-url", help="the URL clients use (default: GATEWAY_TOKEN_ISSUER, "
                                        "else http://HOST:PORT)")
    p.set_defaults(func=lambda args: cmd_openapi(args, settings_of(args)))
