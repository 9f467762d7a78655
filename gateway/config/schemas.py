"""Route schemas for the OpenAPI document, resolved once, when the config loads.

A route's `openapi.request` / `openapi.response` is a JSON Schema written inline, or
`{$ref: TARGET}` where TARGET is one of

    #/components/schemas/Name            a schema the document itself defines (Problem, ...)
    package:PKG/dir/file.json[#/ptr]     a file shipped inside an installed Python package
    dir/file.json[#/ptr]                 a file, relative to the routes file's directory

Files are JSON or YAML; a pointer (RFC 6901) picks one part of a file. A resolved schema
is embedded in the document, so any `$ref` left inside it must name a document schema:
a file's own `#/$defs/...` would point into the wrong document once embedded.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.config.models import RoutesFile
from gateway.config.source import LineMap, field_error
from gateway.errors import ConfigError

COMPONENT_PREFIX = "#/components/schemas/"
PACKAGE_PREFIX = "package:"
# The schemas every document defines (gateway/openapi/components.py builds them).
DOCUMENT_SCHEMAS = frozenset({"Problem", "OAuthError", "TokenResponse", "Health", "Ready"})


@dataclass(frozen=True, slots=True)
class RouteSchemas:
    """One route's request and response schemas, ready to embed."""

    request: dict[str, Any] | None
    response: dict[str, Any] | None


class _SchemaProblem(ValueError):
    """A schema reference that cannot be resolved; the message says why."""


def _read_target(target: str, base: Path, files: dict[str, Any]) -> tuple[Any, str]:
    """The parsed file a reference names, and the name to watch it by (a path)."""
    if target.startswith(PACKAGE_PREFIX):
        package, _, resource = target[len(PACKAGE_PREFIX):].partition("/")
        try:
            ref = importlib.resources.files(package).joinpath(resource)
        except ModuleNotFoundError:
            raise _SchemaProblem(f"no installed package {package!r}") from None
        where = str(ref)
    else:
        ref = base / target
        where = str(ref)
    if where not in files:
        try:
            text = ref.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _SchemaProblem(f"cannot read schema file {where}: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from None
        try:
            files[where] = json.loads(text) if where.endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise _SchemaProblem(f"schema file {where} does not parse: {exc}") from None
    return files[where], where


def _follow(doc: Any, pointer: str, where: str) -> Any:
    if pointer and not pointer.startswith("/"):
        raise _SchemaProblem(f"{pointer!r} is not a JSON pointer (it starts with '/')")
    node = doc
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _SchemaProblem(f"{where} has nothing at #{pointer}")
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def resolve_schema(value: dict[str, Any], base: Path, files: dict[str, Any]) -> dict[str, Any]:
    """An inline schema checked, or a `$ref`'d one read; `files` caches parsed files."""
    target = value.get("$ref")
    if isinstance(target, str) and len(value) == 1 and not target.startswith("#"):
        file_part, _, pointer = target.partition("#")
        doc, where = _read_target(file_part, base, files)
        value = _follow(doc, pointer, where)
        if not isinstance(value, dict):
            raise _SchemaProblem(f"{target} is not a schema object")
    for ref in _refs(value):
        name = ref.removeprefix(COMPONENT_PREFIX)
        if not ref.startswith(COMPONENT_PREFIX) or name not in DOCUMENT_SCHEMAS:
            raise _SchemaProblem(
                f"$ref {ref!r} inside a route schema must name a document schema "
                f"({', '.join(COMPONENT_PREFIX + n for n in sorted(DOCUMENT_SCHEMAS))})")
    return value


def resolve_route_schemas(doc: RoutesFile, path: Path, lines: LineMap,
                          problems: list[ConfigError]
                          ) -> tuple[dict[str, RouteSchemas], tuple[str, ...]]:
    """Every route's schemas, and the schema files read (a reload watches them too);
    each reference that does not resolve is added to `problems`."""
    files: dict[str, Any] = {}
    out: dict[str, RouteSchemas] = {}
    for i, route in enumerate(doc.routes):
        if route.openapi is None:
            continue
        resolved: dict[str, dict[str, Any] | None] = {}
        for part in ("request", "response"):
            value = getattr(route.openapi, part)
            try:
                resolved[part] = None if value is None else resolve_schema(
                    value, path.parent, files)
            except _SchemaProblem as exc:
                problems.append(field_error(path, lines, ("routes", i, "openapi", part),
                                            str(exc)))
                resolved[part] = None
        out[route.name] = RouteSchemas(resolved["request"], resolved["response"])
    return out, tuple(sorted(files))
