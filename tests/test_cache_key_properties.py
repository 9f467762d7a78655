"""Properties of the response cache key (gateway/cache_key.py): the same logical request
always gives the same key; a different tenant, route, method, path, query, body or
varying header value gives a different one; and no two tenants ever share a key, however
the rest of their requests is chosen."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cache_key import ANONYMOUS_SCOPE, SHARED_SCOPE, body_digest, cache_key
from gateway.config.models import NAME_PATTERN

NAMES = st.from_regex(NAME_PATTERN, fullmatch=True)  # tenant ids and route names
SCOPES = NAMES | st.sampled_from([SHARED_SCOPE, ANONYMOUS_SCOPE])
HEADER_NAMES = st.sampled_from(["accept", "accept-language", "x-model", "x-a", "x-a-b"])
HEADERS = st.lists(st.tuples(HEADER_NAMES, st.none() | st.binary(max_size=12)), max_size=3,
                   unique_by=lambda h: h[0])
SCALARS = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=8)
JSON = st.recursive(SCALARS,
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=10)
REQUESTS = st.fixed_dictionaries({
    "scope_id": SCOPES, "route": NAMES,
    "method": st.sampled_from(["GET", "POST", "PUT"]),
    "path": st.text(max_size=20).map(lambda p: "/" + p),
    "query": st.binary(max_size=12), "vary_headers": HEADERS,
    "body_digest": st.binary(max_size=20).map(lambda b: body_digest(b, None)),
})
FAST = settings(max_examples=60, deadline=None, database=None)


def key(request: dict[str, object]) -> str:
    return cache_key(**request)  # type: ignore[arg-type]


@FAST
@given(request=REQUESTS)
def test_the_same_request_gives_the_same_key(request):
    again = {k: (list(v) if isinstance(v, list) else v) for k, v in request.items()}
    assert key(request) == key(again)
    scope, route = key(request).split(":")[1:3]
    assert (scope, route) == (request["scope_id"], request["route"])  # readable, purgeable


@FAST
@given(value=JSON, indent=st.booleans(), data=st.data())
def test_equal_json_bodies_give_the_same_digest(value, indent, data):
    if isinstance(value, dict):  # the same object, its keys in another order
        items = data.draw(st.permutations(list(value.items())))
        other = orjson.dumps(dict(items), option=orjson.OPT_INDENT_2 if indent else 0)
    else:
        other = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0)
    body = orjson.dumps(value)
    assert body_digest(body, b"application/json") == body_digest(other, b"Application/JSON")


@FAST
@given(a=REQUESTS, b=REQUESTS)
def test_different_requests_give_different_keys(a, b):
    same = (a["scope_id"], a["route"], a["method"], a["path"], a["query"],
            [(n, v) for n, v in a["vary_headers"]], a["body_digest"])
    other = (b["scope_id"], b["route"], b["method"], b["path"], b["query"],
             [(n, v) for n, v in b["vary_headers"]], b["body_digest"])
    assert (key(a) == key(b)) == (same == other)


@FAST
@given(request=REQUESTS, field=st.sampled_from(
    ["scope_id", "route", "method", "path", "query", "vary_headers", "body_digest"]),
    data=st.data())
def test_changing_any_one_field_changes_the_key(request, field, data):
    if field == "vary_headers" and request["vary_headers"]:
        # The same header names, one value changed (absent and empty are different).
        name, value = request["vary_headers"][0]
        new = data.draw((st.none() | st.binary(max_size=12)).filter(lambda v: v != value))
        new_value = [(name, new), *request["vary_headers"][1:]]
    else:
        new_value = data.draw(REQUESTS.map(lambda r: r[field]).filter(
            lambda v: v != request[field]))
    assert key(request) != key({**request, field: new_value})


@settings(max_examples=100, deadline=None, database=None)
@given(a=REQUESTS, b=REQUESTS)
def test_two_tenants_never_share_a_key(a, b):
    if a["scope_id"] != b["scope_id"]:
        assert key(a) != key(b)
    # Even a request built to look like another tenant's (its route or path naming the
    # other tenant) stays under its own scope.
    forged = {**b, "scope_id": a["scope_id"] + "x", "route": a["route"]}
    assert key(forged) != key(a)


@FAST
@given(request=REQUESTS, name=HEADER_NAMES)
def test_an_absent_header_differs_from_an_empty_one(request, name):
    others = [h for h in request["vary_headers"] if h[0] != name]
    absent = {**request, "vary_headers": [(name, None), *others]}
    empty = {**request, "vary_headers": [(name, b""), *others]}
    assert key(absent) != key(empty)
