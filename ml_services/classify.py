"""The classification service: `python -m ml_services.classify` (or `ml-classify`).

One service, many tasks: `TASKS` maps a task name to the factory of its model, and a
request picks one with `"task"` (default `moderation`). To add a task (intent, zero-shot,
embeddings...), write a `TaskModel` and register its factory here. Settings come from
`ML_CLASSIFY_*` environment variables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ml_services.cli import serve
from ml_services.moderation import ProfanityModeration
from ml_services.runner import ModelRunner, TaskModel
from ml_services.settings import ServiceSettings


class ClassifySettings(ServiceSettings):
    """`ML_CLASSIFY_*`: the shared knobs, which tasks to load, and their thresholds."""

    model_config = SettingsConfigDict(env_prefix="ML_CLASSIFY_", extra="ignore", frozen=True)

    port: int = Field(default=8102, ge=0, le=65535)
    tasks: list[str] = ["moderation"]  # JSON list in the environment
    default_task: str = "moderation"
    moderation_threshold: float = Field(default=0.5, ge=0.0, le=1.0)


TaskFactory = Callable[[ClassifySettings], TaskModel]

TASKS: dict[str, TaskFactory] = {
    "moderation": lambda s: ProfanityModeration(s.moderation_threshold, s.model_version),
}


class ClassifyRunner(ModelRunner):
    """Serves the tasks named in `settings.tasks`, built from the `TASKS` registry."""

    def __init__(self, settings: ClassifySettings,
                 registry: Mapping[str, TaskFactory] = TASKS) -> None:
        unknown = set(settings.tasks) - set(registry)
        if unknown:
            raise ValueError(f"unknown task(s): {sorted(unknown)}; known: {sorted(registry)}")
        if settings.default_task not in settings.tasks:
            raise ValueError(f"default_task {settings.default_task!r} is not in tasks")
        self._settings = settings
        self._registry = registry
        self.default_task = settings.default_task

    def load(self) -> Mapping[str, TaskModel]:
        return {name: self._registry[name](self._settings) for name in self._settings.tasks}


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: serve classification until interrupted."""
    serve("Classification inference service (moderation, ...).", ClassifySettings,
          ClassifyRunner, argv)


if __name__ == "__main__":
    main()
