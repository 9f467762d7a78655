"""Property: whatever routes.yaml and policies/ hold (arbitrary YAML-ish text, or a valid
set of files with a node replaced, a key dropped or a line broken), loading gives either a
config or the project's ConfigError naming one of the files, a line inside it (or none)
and a field; never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.config.runtime import RuntimeConfig
from gateway.errors import ConfigError
from tests.config.test_load import GOOD

TIERS = {"version": 1, "tiers": {"free": {"rate": "10/minute"}, "pro": {"rate": "100/second"}}}
TENANTS = {"version": 1, "tenants": {"acme": {"tier": "pro"}, "globex": {"tier": "free"}}}
FILES = {"routes.yaml": yaml.safe_load(GOOD), "policies/tiers.yaml": TIERS,
         "policies/tenants.yaml": TENANTS}
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# Text made of what YAML and these files are made of, so documents parse far enough to
# reach validation as often as they fail in the scanner.
PIECES = st.sampled_from([*"abcdefgimnoprstuvwxyz0123456789 -:/{}[],.'\"#&*!|>%@$\n\t",
                          "version: 1\n", "routes:\n", "upstreams:\n", "  - ", "name: ",
                          "match: ", "url: http://127.0.0.1:9", "${X}", "${X:-1}",
                          "tiers:\n", "tenants:\n", "\x08", "\xff"])
YAMLISH = st.lists(PIECES, max_size=60).map("".join)
VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) \
    | st.lists(st.integers() | st.text(max_size=4), max_size=3) \
    | st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=4), max_size=3)


def check(texts: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="config-fuzz-") as d:
        tmp = Path(d)
        (tmp / "policies").mkdir()
        _check(tmp, texts)


def _check(tmp: Path, texts: dict[str, str]) -> None:
    for name, text in texts.items():
        (tmp / name).write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        config = load_config(tmp / "routes.yaml", tmp / "policies")
    except ConfigError as exc:
        for problem in exc.problems:
            assert problem.file in {str(tmp / n) for n in FILES}, problem.text
            assert isinstance(problem.field, str) and problem.field, problem.text
            assert problem.message, problem.text
            if problem.line is not None:
                lines = Path(problem.file).read_text(errors="replace").count("\n") + 1
                assert 1 <= problem.line <= lines, problem.text
    else:
        assert isinstance(config, RuntimeConfig)


def paths(doc: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node's path in a parsed document."""
    out = [at]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*at, i))
    return out


def replaced(doc: Any, at: tuple[Any, ...], value: Any, drop: bool) -> Any:
    if not at:
        return value
    head, rest = at[0], at[1:]
    if isinstance(doc, dict):
        if drop and not rest:
            return {k: v for k, v in doc.items() if k != head}
        return {**doc, head: replaced(doc[head], rest, value, drop)}
    items = list(doc)
    if drop and not rest:
        return items[:head] + items[head + 1:]
    items[head] = replaced(items[head], rest, value, drop)
    return items


@FUZZ
@given(name=st.sampled_from(sorted(FILES)), text=YAMLISH)
def test_arbitrary_text_in_any_file_is_a_config_or_a_config_error(name, text):
    texts = {n: yaml.safe_dump(doc, sort_keys=False) for n, doc in FILES.items()}
    check({**texts, name: text})


@FUZZ
@given(name=st.sampled_from(sorted(FILES)), data=st.data(), value=VALUES, drop=st.booleans())
def test_a_valid_config_with_a_node_replaced_or_dropped_loads_or_is_refused(
        name, data, value, drop):
    doc = FILES[name]
    at = data.draw(st.sampled_from(paths(doc)))
    texts = {n: yaml.safe_dump(d, sort_keys=False) for n, d in FILES.items()}
    texts[name] = yaml.safe_dump(replaced(doc, at, value, drop), sort_keys=False)
    check(texts)


@FUZZ
@given(name=st.sampled_from(sorted(FILES)), data=st.data(),
       edit=st.sampled_from(["delete", "duplicate", "indent", "dedent", "insert"]),
       junk=st.text(max_size=4))
def test_a_valid_config_with_a_line_broken_loads_or_is_refused(name, data, edit, junk):
    texts = {n: yaml.safe_dump(d, sort_keys=False) for n, d in FILES.items()}
    lines = texts[name].splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines) - 1))
    if edit == "delete":
        del lines[i]
    elif edit == "duplicate":
        lines.insert(i, lines[i])
    elif edit == "indent":
        lines[i] = "  " + lines[i]
    elif edit == "dedent":
        lines[i] = lines[i].lstrip(" ")
    else:
        cut = data.draw(st.integers(0, len(lines[i])))
        lines[i] = lines[i][:cut] + junk + lines[i][cut:]
    texts[name] = "".join(lines)
    check(texts)
