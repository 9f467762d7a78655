"""`GuardedStore`: a store whose every public async method runs through its breaker.

The breaker (breaker.py) is where a store's own errors (redis-py's, sockets') become
`StoreUnavailable`, and where an open breaker answers at once. A subclass only writes
plain methods: `__init_subclass__` wraps each public coroutine function it defines, as
`limits`' storage base class wraps its methods' errors, so no caller can forget the
breaker and no Redis error ever reaches a policy as a 500.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gateway.stores.breaker import StoreBreaker

T = TypeVar("T")


def _through_breaker(method: Callable[..., Coroutine[Any, Any, T]]
                     ) -> Callable[..., Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def guarded(self: GuardedStore, *args: Any, **kwargs: Any) -> T:
        return await self.breaker.call(functools.partial(method, self, *args, **kwargs))

    return guarded


class GuardedStore:
    """Base of the Redis stores: public async methods raise only `StoreUnavailable`."""

    breaker: StoreBreaker

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(member):
                setattr(cls, name, _through_breaker(member))
