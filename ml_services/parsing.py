"""The `POST /predict` request body: parse, validate, apply the limits.

Use `parse_predict` on the raw body bytes. It is hand-written on top of orjson rather than
a pydantic model because it runs once per request on the hot path; every refusal raises a
`ProblemError` that names the field or the limit.

Accepted shapes (unknown fields are refused so that typos surface):

    {"text": "one text"}                      -> one prediction, still in a list
    {"texts": ["a", "b", ...]}                -> one prediction per text, same order
    either of them plus {"task": "moderation"} to pick a task (default: the service's)
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from ml_services.problems import ProblemError

_FIELDS = frozenset({"text", "texts", "task"})


@dataclass(frozen=True, slots=True)
class PredictInput:
    """A validated request: the texts in order and the task asked for (None: default)."""

    texts: list[str]
    task: str | None


def _invalid(detail: str) -> ProblemError:
    return ProblemError(422, "invalid-request", "Invalid request body", detail)


def decode_json(raw: bytes) -> object:
    """The parsed body, or the 400 problem for bytes that are not JSON (or not UTF-8)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProblemError(
            400, "invalid-utf8", "Body is not valid UTF-8",
            f"invalid UTF-8 byte at offset {exc.start}",
        ) from None
    raise ProblemError(400, "malformed-json", "Malformed JSON", "the body is not valid JSON")


def parse_predict(raw: bytes, *, max_texts: int, max_chars: int) -> PredictInput:
    """Validate one request body against the limits, or raise a `ProblemError`."""
    body = decode_json(raw)
    if type(body) is not dict:
        raise _invalid("the body must be a JSON object with 'text' or 'texts'")
    if not body.keys() <= _FIELDS:
        unknown = ", ".join(sorted(str(k) for k in body.keys() - _FIELDS))
        raise _invalid(f"unknown field(s): {unknown}; allowed: text, texts, task")
    task = body.get("task")
    if task is not None and type(task) is not str:
        raise _invalid("'task' must be a string")
    if "text" in body:
        if "texts" in body:
            raise _invalid("give either 'text' or 'texts', not both")
        texts = [body["text"]]
        where = "'text'"
    elif "texts" in body:
        texts = body["texts"]
        if type(texts) is not list:
            raise _invalid("'texts' must be a list of strings")
        if not texts:
            raise _invalid("'texts' must not be empty")
        if len(texts) > max_texts:
            raise ProblemError(
                413, "too-many-texts", "Too many texts",
                f"{len(texts)} texts in one request; the limit is max_texts={max_texts}",
            )
        where = "'texts'"
    else:
        raise _invalid("the body needs 'text' (a string) or 'texts' (a list of strings)")
    for i, text in enumerate(texts):
        if type(text) is not str:
            raise _invalid(f"{where} item {i} must be a string")
        if len(text) > max_chars:
            raise ProblemError(
                422, "text-too-long", "Text too long",
                f"{where} item {i} has {len(text)} characters; "
                f"the limit is max_chars={max_chars}",
            )
    return PredictInput(texts, task)
