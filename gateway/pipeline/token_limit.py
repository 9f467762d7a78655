"""Token and budget limits of LLM calls: reserved before the upstream, settled after.

A tenant's `tokens` limits count prompt plus completion tokens, its `budget` limits
currency units by the model's price (policies/, docs/llm.md). Before the call the
estimate (`ctx.llm.estimate`, gateway/llm_request.py) is charged like a request's cost,
all or nothing: a limit without room refuses the call with 429 and Retry-After, and
nothing is charged. The reservation is capped at the smallest such limit, so a call
asking for more than a whole limit is still admitted when that limit is full.

When the request ends (however it ends) a cleanup settles the reservation against what
the upstream reported (`RateLimitStore.settle`, gcra; never refused):

    usage reported             charge exactly that: the difference is refunded or added
    no answer, or a 4xx/5xx    refund it all: nothing was generated
    answered without usage     keep the reservation (the estimate stands in)

A call that used more than reserved leaves the bucket below empty: later calls wait
until it has refilled. Answers carry `x-ratelimit-limit-tokens`, `-remaining-tokens`
and `-reset-tokens` for the token limit closest to exhaustion, after the reservation.
"""

from __future__ import annotations

import contextlib

from limits import RateLimitItem

from gateway.config.limits import EffectiveLimits
from gateway.config.runtime import CompiledRoute
from gateway.context import LlmCall, RequestContext
from gateway.errors import RateLimited, StoreUnavailable
from gateway.pipeline import Policy
from gateway.proxy_response import ProxyResponse
from gateway.stores import Stores
from gateway.stores.rate_limits import (
    MICROS,
    Charge,
    Check,
    RateLimitStore,
    limit_check,
    token_scope,
)

TOO_MANY_TOKENS = "token limit of {limit} exceeded"
OVER_BUDGET = "budget of {limit} (currency units) exceeded"
CURRENCY_MICROS = 1_000_000  # budgets are counted in millionths of a currency unit


def _seconds(micros: int) -> int:
    return -(-micros // MICROS)


def budget_check(item: RateLimitItem, tenant: str) -> Check:
    """A budget limit in millionths of a currency unit, so a call's spend is exact."""
    amount, seconds = item.amount, item.get_expiry()
    # {tenant}: the hash tag every key of a tenant's charge shares (rate_limits.py).
    return Check(amount * CURRENCY_MICROS, seconds * MICROS,
                 f"b/{{{tenant}}}/{amount}/{seconds}")


class TokenLimitPolicy(Policy):
    """After the request limits: the tenant's token and budget limits of an LLM call."""

    name = "token_limit"

    def __init__(self, stores: Stores, fail_closed: bool):
        assert stores.tokens is not None
        self.store: RateLimitStore = stores.tokens
        self.fail_closed = fail_closed
        self._plans: dict[tuple[str, str], tuple[EffectiveLimits, tuple[Check, ...],
                                                 tuple[Check, ...]]] = {}

    def applies_to(self, route: CompiledRoute) -> bool:
        return route.llm is not None and route.llm.api != "models" and not route.public

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        call, principal = ctx.llm, ctx.principal
        if call is None or principal is None:
            return None
        tenant = principal.tenant_id
        limits = ctx.config.limits.lookup(tenant, ctx.route.name)
        if not limits.tokens and not limits.budget:
            return None
        plan = self._plans.get((tenant, ctx.route.name))
        if plan is None or plan[0] is not limits:
            plan = self._plans[(tenant, ctx.route.name)] = (
                limits, tuple(limit_check(i, token_scope(tenant)) for i in limits.tokens),
                tuple(budget_check(i, tenant) for i in limits.budget))
        _, tokens, budget = plan
        price = max(call.model.prompt_price, call.model.completion_price)
        wanted = [(tokens, call.estimate, TOO_MANY_TOKENS, limits.tokens),
                  (budget, round(call.estimate * price * CURRENCY_MICROS), OVER_BUDGET,
                   limits.budget)]
        held: list[tuple[tuple[Check, ...], int]] = []
        try:
            for checks, estimate, message, items in wanted:
                if not checks:
                    continue
                reserve = min(estimate, *(c.amount for c in checks))
                got = await self.store.charge(checks, reserve)
                if checks is tokens:
                    self._headers(ctx, checks, got)
                if not got.admitted:
                    i = got.verdict - 1
                    for done, units in held:  # all or nothing across the two
                        await self.store.settle(done, -units)
                    raise RateLimited(message.format(limit=items[i]),
                                      max(1, _seconds(got.limits[i].retry)))
                held.append((checks, reserve))
        except StoreUnavailable:
            if self.fail_closed:
                raise
            return None
        ctx.cleanups.append(lambda: self._settle(call, held))
        return None

    async def _settle(self, call: LlmCall,
                      held: list[tuple[tuple[Check, ...], int]]) -> None:
        for checks, reserved in held:
            is_budget = checks[0].key.startswith("b/")
            if call.reported:
                used = (round(call.spend * CURRENCY_MICROS) if is_budget
                        else call.total_tokens)
            elif call.status == 0 or call.status >= 400:
                used = 0
            else:
                used = reserved
            with contextlib.suppress(StoreUnavailable):
                await self.store.settle(checks, used - reserved)

    @staticmethod
    def _headers(ctx: RequestContext, checks: tuple[Check, ...], got: Charge) -> None:
        found = got.limits
        admitted = got.admitted
        i = (got.verdict - 1 if not admitted else
             min(range(len(found)), key=lambda n: found[n].left))
        st = found[i]
        left, reset = (st.left, st.reset) if admitted else (st.left_now, st.reset_now)
        ctx.response_headers += [
            (b"x-ratelimit-limit-tokens", str(checks[i].amount).encode()),
            (b"x-ratelimit-remaining-tokens", str(max(0, left)).encode()),
            (b"x-ratelimit-reset-tokens", str(_seconds(reset)).encode()),
        ]
