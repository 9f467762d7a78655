"""The response cache policy: look up before the upstream, store after, coalesce misses.

    on_request   no-cache/no-store from the client → BYPASS (no lookup);
                 stored entry → HIT (the pipeline stops, the upstream is not called);
                 an identical request already on its way upstream → wait for its answer;
                 else MISS, and this request leads: the ones that arrive meanwhile wait.
    on_response  hand a storable answer (see `cache_entry.storable_ttl`) to the waiting
                 requests, then store it; identical misses arriving until the write has
                 landed take it too. An unstorable one releases them to go upstream.

Semantic routes (`cache.semantic`): after an exact miss, the request's text is embedded
by the embeddings service and the most similar stored answer of the same tenant, route
and rest-of-body is a HIT-SEMANTIC if its cosine similarity reaches the threshold
(X-Cache-Similarity says how near); a stored answer is indexed by its request's vector.
An embeddings service that is down or slow makes the lookup an exact-only MISS.

Coalescing is per process (a dict of futures keyed by cache key): across N replicas, up
to N identical misses reach the upstream, one per replica, then all hit the shared
entry. A store outage makes every request a BYPASS; the cache never fails a request.
Every answer of a cached route carries X-Cache.
"""

from __future__ import annotations

import asyncio
import contextlib

from gateway.cache_entry import CachedAnswer, answer_for_storage, cache_directives, storable_ttl
from gateway.cache_key import ANONYMOUS_SCOPE, SHARED_SCOPE, body_digest, cache_key
from gateway.config.runtime import CompiledRoute
from gateway.context import CacheLookup, RequestContext
from gateway.errors import StoreUnavailable
from gateway.pipeline import Policy
from gateway.proxy_response import ProxyResponse
from gateway.semantic import Embedder, semantic_parts
from gateway.stores import Stores

CACHEABLE_METHODS = frozenset({"GET", "HEAD", "POST"})
HIT, MISS, BYPASS, HIT_SEMANTIC = b"HIT", b"MISS", b"BYPASS", b"HIT-SEMANTIC"


class CachePolicy(Policy):
    """Caches whole 2xx answers of routes with `cache:` in routes.yaml."""

    name = "cache"

    def __init__(self, stores: Stores, max_entry_bytes: int, embedder: Embedder | None = None):
        self.store = stores.cache  # raises only StoreUnavailable (a GuardedStore on Redis)
        self.vectors = stores.vectors
        self.embedder = embedder or Embedder()
        self.max_entry_bytes = max_entry_bytes
        self.flights: dict[str, asyncio.Future[CachedAnswer | None]] = {}

    def applies_to(self, route: CompiledRoute) -> bool:
        return route.spec.cache is not None and route.spec.cache.enabled

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        spec = ctx.route.spec.cache
        if spec is None or not spec.enabled or ctx.method not in CACHEABLE_METHODS:
            return None
        if spec.shared:
            scope = SHARED_SCOPE
        else:
            scope = ctx.principal.tenant_id if ctx.principal is not None else ANONYMOUS_SCOPE
        vary = [(name.lower(), ctx.header(name.lower().encode())) for name in spec.vary]
        digest = body_digest(ctx.body or b"", ctx.header(b"content-type"))
        key = cache_key(scope, ctx.route.name, ctx.method, ctx.path, ctx.query, vary, digest)
        asked = cache_directives(ctx.header(b"cache-control"))
        lookup = ctx.cache = CacheLookup(key, spec.ttl, store="no-store" not in asked)
        if "no-cache" in asked or "no-store" in asked:
            return self._status(ctx, BYPASS)
        try:
            entry = await self.store.get(key)
        except StoreUnavailable:
            lookup.store = False
            return self._status(ctx, BYPASS)
        if entry is not None:
            self._status(ctx, HIT)
            return entry.to_response()
        if spec.semantic is not None:
            near = await self._semantic(ctx, lookup, scope, vary)
            if near is not None:
                return near
        return await self._coalesce(ctx, lookup)

    async def _semantic(self, ctx: RequestContext, lookup: CacheLookup, scope: str,
                        vary: list[tuple[str, bytes | None]]) -> ProxyResponse | None:
        """The stored answer of the nearest similar request, or None (then: a miss)."""
        semantic = ctx.route.spec.cache.semantic  # type: ignore[union-attr]
        assert semantic is not None
        parts = semantic_parts(ctx.body or b"", semantic.field)
        group = ctx.config.groups.get(semantic.upstream)
        if parts is None or group is None or not group.targets:
            return None
        text, rest = parts
        vector = await self.embedder.embed(group.targets[0].url, text, semantic.timeout)
        if vector is None:
            return None
        partition = cache_key(scope, ctx.route.name, ctx.method, ctx.path, ctx.query, vary,
                              "semantic:" + rest)
        lookup.vector, lookup.partition = vector, partition
        try:
            found = await self.vectors.search(partition, vector)
            if found is None or found[0] < semantic.threshold:
                return None
            entry = await self.store.get(found[1])
        except StoreUnavailable:
            return None
        if entry is None:
            return None
        self._status(ctx, HIT_SEMANTIC)
        ctx.response_headers.append((b"x-cache-similarity", f"{found[0]:.4f}".encode()))
        return entry.to_response()

    async def _coalesce(self, ctx: RequestContext, lookup: CacheLookup) -> ProxyResponse | None:
        leader = self.flights.get(lookup.key)
        if leader is None:
            flight = asyncio.get_running_loop().create_future()
            self.flights[lookup.key] = lookup.flight = flight
            ctx.cleanups.append(lambda: self._land(lookup, None))  # however the leader ends
            return self._status(ctx, MISS)
        if leader.done():  # answered, its entry being written: take the answer
            answer = leader.result()
        else:
            budget = ctx.route.total_timeout * (1 + ctx.route.retry.attempts) + 1.0
            ctx.awaiting_leader = True  # a client that leaves now is let go at once
            try:
                answer = await asyncio.wait_for(asyncio.shield(leader), budget)
            except TimeoutError:
                answer = None
            finally:
                ctx.awaiting_leader = False
        if answer is None:  # the leader failed or its answer may not be shared: go alone
            return self._status(ctx, MISS)
        self._status(ctx, HIT)
        return answer.to_response()

    async def on_response(self, ctx: RequestContext, response: ProxyResponse) -> None:
        lookup = ctx.cache
        if lookup is None or response.source != "upstream":
            return
        ttl = storable_ttl(response, lookup.ttl, self.max_entry_bytes) if lookup.store else 0.0
        answer = answer_for_storage(response) if ttl > 0 else None
        if answer is None:
            await self._land(lookup, None)
            return
        # The waiting requests get the answer now, but the flight stays findable until
        # the entry is written: a lookup sent before the write may still miss, and must
        # then join this flight rather than go upstream. (Replies on the store's one
        # connection come in order, so such a miss is seen before the write completes.)
        flight = lookup.flight
        if flight is not None and not flight.done():
            flight.set_result(answer)
        try:
            # A store outage only costs the next request a miss.
            with contextlib.suppress(StoreUnavailable):
                await self.store.set(lookup.key, answer, ttl)
                semantic = ctx.route.spec.cache.semantic if ctx.route.spec.cache else None
                if lookup.vector is not None and semantic is not None:
                    await self.vectors.add(lookup.partition, lookup.vector, lookup.key, ttl,
                                           semantic.max_entries)
        finally:
            await self._land(lookup, answer)

    async def _land(self, lookup: CacheLookup, answer: CachedAnswer | None) -> None:
        """Hand the leader's answer (or None) to the requests waiting on it, once, and
        stop new identical misses from joining."""
        flight = lookup.flight
        if flight is None:
            return
        lookup.flight = None
        if self.flights.get(lookup.key) is flight:
            del self.flights[lookup.key]
        if not flight.done():
            flight.set_result(answer)

    @staticmethod
    def _status(ctx: RequestContext, status: bytes) -> None:
        ctx.cache_status = status.decode()
        ctx.response_headers.append((b"x-cache", status))

