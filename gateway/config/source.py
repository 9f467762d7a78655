"""Read a YAML file and remember the line of every value, so errors can name it.

`read_yaml(path)` returns the plain data plus a `LineMap`; `validation_error(...)` turns a
pydantic `ValidationError` into a `ConfigError` naming file, line and field of each of
its problems (`ConfigError.problems`), so an operator sees them all in one go.

String values may name environment variables, `${NAME}` or `${NAME:-default}` (as in
compose files), expanded when the file loads: the shipped routes.yaml reaches the bundled
services at `${ML_SENTIMENT_PORT:-8101}`, the port the service itself reads, so moving a
service moves its route too. An unset variable without a default is a ConfigError.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gateway.errors import ConfigError

Loc = tuple[str | int, ...]


class LineMap:
    """Line numbers (1-based) of every mapping key and sequence item, by location."""

    def __init__(self) -> None:
        self.lines: dict[Loc, int] = {}

    def line_of(self, loc: Loc) -> int | None:
        # The nearest located ancestor: a missing field is reported at its parent.
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(text: str, line: int, loc: Loc) -> str:
    def value(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        found = os.environ.get(name, default)
        if found is None:
            raise ConfigError("", line, _dotted(loc), f"environment variable {name} is not "
                              f"set (give a default with ${{{name}:-value}})")
        return found

    return _ENV_REF.sub(value, text)


def _construct(node: yaml.Node, loc: Loc, lines: LineMap, loader: yaml.SafeLoader) -> Any:
    lines.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise ConfigError("", key_node.start_mark.line + 1, _dotted((*loc, key)),
                                  "duplicate key")
            lines.lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*loc, key), lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, (*loc, i), lines, loader) for i, v in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, str) and "${" in value:
        return _expand_env(value, node.start_mark.line + 1, loc)
    return value


EMPTY_FILE = ("the file is empty (a save still in progress?); "
              "write an empty table out, e.g. `tenants: {}`")


def read_yaml(path: Path) -> tuple[Any, LineMap]:
    """Parse one YAML file; syntax errors become ConfigError with the line."""
    lines = LineMap()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), None, "(file)", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), None, "(file)", f"cannot read: {exc}") from None
    try:
        loader = yaml.SafeLoader(text)  # checks every character first
    except yaml.reader.ReaderError as exc:  # one YAML does not allow (a control character)
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(str(path), line, "(syntax)",
                          f"character #x{exc.character:04x} is not allowed in YAML") from None
    try:
        node = loader.get_single_node()
        if node is None:
            # An empty file is most often a save caught half-way (truncated, not yet
            # written): taking it as "no tenants" or "no tiers" would refuse every
            # tenant until the next poll. An empty table is written out, e.g. `tenants: {}`.
            raise ConfigError(str(path), None, "(file)", EMPTY_FILE)
        return _construct(node, (), lines, loader), lines
    except ConfigError as exc:
        raise ConfigError(str(path), exc.line, exc.field, exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = mark.line + 1 if mark else None
        raise ConfigError(str(path), where, "(syntax)", str(exc.problem or exc)) from None
    finally:
        loader.dispose()


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


# What pydantic puts before the text of a validator's own exception.
_VALIDATOR_PREFIXES = ("Value error, ", "Assertion failed, ")


def validation_error(path: Path, lines: LineMap, exc: ValidationError) -> ConfigError:
    """Every validation problem, as one ConfigError (file, line, field, message each)."""
    problems = []
    for err in exc.errors(include_url=False):
        # pydantic adds union/literal tags to loc ("function-after[...]"); keep the data path.
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or "[" not in str(p))
        msg = err["msg"]
        for prefix in _VALIDATOR_PREFIXES:
            msg = msg.removeprefix(prefix)
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append(ConfigError(str(path), lines.line_of(loc), _dotted(loc), msg))
    return ConfigError.of(problems)


def field_error(path: Path, lines: LineMap, loc: Loc, message: str) -> ConfigError:
    """A cross-field problem found after validation (e.g. an unknown upstream name)."""
    return ConfigError(str(path), lines.line_of(loc), _dotted(loc), message)


M = TypeVar("M", bound=BaseModel)


def read_model(path: Path, model: type[M]) -> tuple[M, LineMap]:
    """Parse one YAML file and validate it as `model`; every problem is a ConfigError."""
    data, lines = read_yaml(path)
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        raise validation_error(path, lines, exc) from None
