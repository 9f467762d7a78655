"""Idempotency-Key on POST (draft-ietf-httpapi-idempotency-key-header), sync and async.

    on_request   no key, not a POST, or a public route → nothing to do
                 an asynchronous request → note the claim in ctx; the job submission
                 makes it with the job, atomically (gateway.jobs.submit)
                 else claim the key for this tenant:
                   new        this request runs; the key is held while it does
                   done       the first request's answer, replayed (no upstream call),
                              with `Idempotent-Replayed: true`
                   busy       409: the first request is still running (the draft's answer)
                   mismatch   422: the key was used for another request
    on_response  store a whole upstream answer below 500 for `GATEWAY_IDEMPOTENCY_TTL`;
                 anything else (a 5xx, a streamed answer, an error) frees the key, so the
                 client's retry runs again, as the draft allows.

The key is the tenant's (`gateway.idempotency_key`): another tenant's identical key is
another key. A store outage fails as the operator chose for the stores
(GATEWAY_STORE_FAIL_MODE): open runs the request without the guarantee, closed is a 503.
"""

from __future__ import annotations

import contextlib

from gateway.cache_entry import answer_for_storage, decode_entry, encode_entry
from gateway.config.runtime import CompiledRoute
from gateway.context import RequestContext
from gateway.errors import Conflict, StoreUnavailable, UnprocessableContent
from gateway.idempotency_key import fingerprint, parse_key, store_key
from gateway.pipeline import Policy
from gateway.prefer import runs_as_job
from gateway.proxy_response import ProxyResponse
from gateway.stores import Stores
from gateway.stores.jobs import IdempotencyClaim

REPLAYED = (b"idempotent-replayed", b"true")
LEASE_MARGIN = 5.0  # seconds a claim outlives the longest the request could take


class IdempotencyPolicy(Policy):
    """Replays the first answer of a repeated POST with the same Idempotency-Key."""

    name = "idempotency"

    def __init__(self, stores: Stores, ttl: float, fail_closed: bool):
        self.store = stores.jobs
        self.ttl = ttl
        self.fail_closed = fail_closed

    def applies_to(self, route: CompiledRoute) -> bool:
        return not route.public and "POST" in route.methods

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        raw = ctx.header(b"idempotency-key")
        principal = ctx.principal
        if raw is None or ctx.method != "POST" or principal is None:
            return None
        key = parse_key(raw)
        asynchronous, _ = runs_as_job(ctx.route, ctx.headers)
        claim = IdempotencyClaim(
            store_key(principal.tenant_id, key),
            fingerprint(asynchronous, ctx.method, ctx.path, ctx.query, ctx.body or b""),
            self.ttl)
        if asynchronous:
            ctx.idempotency = claim
            return None
        route = ctx.route
        lease = route.total_timeout * (1 + route.retry.attempts) * len(route.groups)
        try:
            found, data = await self.store.claim(claim, lease + LEASE_MARGIN)
        except StoreUnavailable:
            if self.fail_closed:
                raise
            return None
        if found == "mismatch":
            raise UnprocessableContent(UnprocessableContent.KEY_REUSED)
        if found == "busy":
            raise Conflict(Conflict.KEY_IN_PROGRESS, retry_after=1)
        if found == "done":
            answer = decode_entry(data)
            if answer is not None:
                response = answer.to_response()
                response.source = "replay"
                response.extra_headers.append(REPLAYED)
                return response
            # An answer stored by another release's format: run the request again.
        ctx.idempotency = claim
        ctx.cleanups.append(lambda: self._release_unanswered(ctx, claim))
        return None

    async def on_response(self, ctx: RequestContext, response: ProxyResponse) -> None:
        claim = ctx.idempotency
        if claim is None or response.source != "upstream" or response.body is None \
                or response.status >= 500 or ctx.job_id:
            return
        with contextlib.suppress(StoreUnavailable):  # then the key frees itself
            await self.store.complete(claim, encode_entry(answer_for_storage(response)))
            ctx.idempotency = None  # answered: nothing for the cleanup to release

    async def _release_unanswered(self, ctx: RequestContext, claim: IdempotencyClaim) -> None:
        if ctx.idempotency is claim:
            with contextlib.suppress(StoreUnavailable):  # the lease ends it anyway
                await self.store.release(claim)
