"""Hot reload: watch the config files, load a new config, swap it whole or keep the old.

Polling file signatures (mtime, size, inode) every `interval` seconds costs a few stat
calls and sees edits made in place, by atomic rename, or by a ConfigMap symlink swap,
which event-based watchers often miss.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import structlog

from gateway.config import load_config
from gateway.config.runtime import ConfigHolder, RuntimeConfig
from gateway.errors import ConfigError

log = structlog.get_logger("gateway.config")

Signature = tuple[tuple[str, int, int, int], ...]


def files_signature(routes_path: Path, policies_dir: Path,
                    schema_files: tuple[str, ...] = ()) -> Signature:
    """What changes when any watched file is edited, replaced, added or removed."""
    paths = [routes_path]
    if policies_dir.is_dir():
        paths += sorted(policies_dir.glob("*.yaml"))
    paths += [Path(f) for f in schema_files]  # route schemas, secret files
    sig = []
    for p in paths:
        try:
            st = os.stat(p)
            sig.append((str(p), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            sig.append((str(p), -1, -1, -1))
    return tuple(sig)


class ConfigReloader:
    """Reloads into a `ConfigHolder` when the files change; a bad file changes nothing."""

    def __init__(
        self,
        holder: ConfigHolder,
        routes_path: Path,
        policies_dir: Path,
        interval: float,
        on_reload: Callable[[RuntimeConfig | None, ConfigError | None], None] | None = None,
    ):
        self.holder = holder
        self.routes_path = routes_path
        self.policies_dir = policies_dir
        self.interval = interval
        self.on_reload = on_reload
        self._signature = self._files_signature()

    def _files_signature(self) -> Signature:
        return files_signature(self.routes_path, self.policies_dir,
                               self.holder.current.watched_files)

    def check(self) -> bool:
        """Reload if anything changed; True when a new config was swapped in."""
        sig = self._files_signature()
        if sig == self._signature:
            return False
        self._signature = sig
        try:
            config = load_config(self.routes_path, self.policies_dir)
        except ConfigError as exc:
            self.holder.reload_failures += 1
            self.holder.last_error = str(exc)
            for problem in exc.problems:  # one line each, so none hides behind another
                log.error("config_reload_refused", file=problem.file, line=problem.line,
                          field=problem.field, problem=problem.message)
            if self.on_reload:
                self.on_reload(None, exc)
            return False
        self.adopt(config)
        return True

    def adopt(self, config: RuntimeConfig) -> None:
        """Swap in a config loaded from the watched files (here, or by the admin API's
        re-check), as a reload: logged, counted, and the files' signature taken."""
        self.holder.swap(config)
        self._signature = self._files_signature()  # the new config may watch other files
        log.info("config_reloaded", generation=self.holder.generation,
                 routes=len(config.routes))
        if self.on_reload:
            self.on_reload(config, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                # Parsing is quick but blocking; keep the event loop free for requests.
                await asyncio.to_thread(self.check)
            except Exception:  # never let the watcher die
                log.exception("config_reload_crashed")
