"""The contract between the shared HTTP server and a service's models.

A service implements `ModelRunner`: `load()` builds its models once, at start-up, and
returns them by task name; each `TaskModel` turns a batch of texts into one JSON-ready
prediction per text. The server knows nothing else about the models.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from ml_services.server import ServiceHandle


class TaskModel(Protocol):
    """One model serving one task; `predict` must be safe to call from a worker thread."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """One prediction per text, in the same order."""
        ...


class ModelRunner(ABC):
    """What a service hands to `create_app`: its tasks and how to load them."""

    #: The task used when a request names none.
    default_task: str

    @abstractmethod
    def load(self) -> Mapping[str, TaskModel]:
        """Load every model (slow: called once, at start-up) and return them by task."""

    def routes(self, service: ServiceHandle) -> Sequence[BaseRoute]:
        """Endpoints of this service besides the shared ones (e.g. an OpenAI-compatible
        API); they reach the loaded models through `service`."""
        return ()

    async def started(self, service: ServiceHandle) -> None:  # noqa: B027 (optional hook)
        """Called once the models are loaded and the batchers run (start reloaders)."""

    async def stopping(self) -> None:  # noqa: B027 (optional hook)
        """Called before the batchers close."""
