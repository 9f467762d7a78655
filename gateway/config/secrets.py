"""Upstream headers, with the secrets among them read when the config loads.

    resolve_upstream_headers(doc, path, lines, problems) -> (headers by target, files read)

A header value in routes.yaml is a plain string (static, not secret) or a `SecretRef`:
`{env: NAME}` or `{file: PATH}` (relative to routes.yaml's directory), with an optional
`prefix` such as `"Bearer "`. A secret is read at every load (start-up, reload, `gateway
check`), so rotating it is editing the variable and restarting, or rewriting the file:
secret files are watched like routes.yaml, and a rewrite reloads the config.

A secret's value is a `Redacted` string: its repr is `'[REDACTED]'`, so no log line, no
traceback and no dataclass repr shows it; `shown` gives what `gateway check` and the
admin API print instead (`<secret from env NAME>`). A missing variable or an unreadable
file is a problem naming the file, line and field, never a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config.models import HeaderValue, RoutesFile, SecretRef
from gateway.config.source import LineMap, field_error
from gateway.errors import ConfigError


class Redacted(str):
    """A secret header value: sent upstream as it is, shown nowhere."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'[REDACTED]'"


@dataclass(frozen=True, slots=True)
class UpstreamHeader:
    """One header the gateway adds to requests to a target."""

    name: str
    value: str  # a `Redacted` when it came from a secret
    shown: str  # what may be printed: the value, or where the secret came from

    def __repr__(self) -> str:
        return f"UpstreamHeader({self.name!r}, {self.shown!r})"


def _read_secret(ref: SecretRef, base: Path) -> tuple[str, str | None]:
    """The secret's value and the file it came from; ValueError says what is missing."""
    import os

    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise ValueError(f"environment variable {ref.env} is not set")
        where = None
    else:
        assert ref.file is not None
        path = base / ref.file
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ValueError(f"cannot read secret file {path}: {reason}") from None
        where = str(path)
    if not value:
        raise ValueError(f"the secret in {ref.env or ref.file} is empty")
    if "\r" in value or "\n" in value:
        raise ValueError(f"the secret in {ref.env or ref.file} holds a line break")
    return value, where


def _resolve(headers: dict[str, HeaderValue], base: Path, loc: tuple[str | int, ...],
             path: Path, lines: LineMap, problems: list[ConfigError], files: set[str]
             ) -> dict[str, UpstreamHeader]:
    out: dict[str, UpstreamHeader] = {}
    for name, value in headers.items():
        if isinstance(value, str):
            out[name.lower()] = UpstreamHeader(name, value, value)
            continue
        try:
            secret, where = _read_secret(value, base)
        except ValueError as exc:
            problems.append(field_error(path, lines, (*loc, name), str(exc)))
            continue
        if where is not None:
            files.add(where)
        source = f"env {value.env}" if value.env else f"file {value.file}"
        out[name.lower()] = UpstreamHeader(name, Redacted(value.prefix + secret),
                                           f"{value.prefix}<secret from {source}>")
    return out


def resolve_upstream_headers(doc: RoutesFile, path: Path, lines: LineMap,
                             problems: list[ConfigError]
                             ) -> tuple[dict[tuple[str, int], tuple[UpstreamHeader, ...]],
                                        tuple[str, ...]]:
    """Every target's headers (the group's, overridden by the target's own, by name),
    keyed by (group, target index); and the secret files read, for the reloader."""
    base = path.parent
    files: set[str] = set()
    out: dict[tuple[str, int], tuple[UpstreamHeader, ...]] = {}
    for group_name, group in doc.upstreams.items():
        shared = _resolve(group.headers, base, ("upstreams", group_name, "headers"), path,
                          lines, problems, files)
        for i, target in enumerate(group.targets):
            own = _resolve(target.headers, base,
                           ("upstreams", group_name, "targets", i, "headers"), path, lines,
                           problems, files)
            merged = {**shared, **own}
            if merged:
                out[(group_name, i)] = tuple(merged.values())
    return out, tuple(sorted(files))
