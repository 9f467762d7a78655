"""prometheus-client's multiprocess mode for `gateway serve --workers N`.

The CLI points PROMETHEUS_MULTIPROC_DIR at an empty directory before the workers start;
each worker writes its values to memory-mapped files there, and a scrape of any worker
sums them (`GatewayMetrics.render`). These helpers prepare and clean that directory and
drop the live gauges of workers that are gone.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile

from prometheus_client.multiprocess import mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PID_FILE = re.compile(r"_(\d+)\.db\Z")


def prepare_multiprocess_dir() -> tuple[str, bool]:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty directory before workers start.

    An operator's own directory is emptied (values from an earlier run would be summed
    in); otherwise a fresh temp dir is made. Returns (path, whether we created it).
    """
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for f in glob.glob(os.path.join(path, "*.db")):
            os.remove(f)
        return path, False
    path = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path, True


def remove_multiprocess_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def forget_dead_workers() -> None:
    """Drop live gauges of workers that are gone (a restarted worker gets a new pid)."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return
    pids = {int(m.group(1)) for f in os.listdir(path) if (m := _PID_FILE.search(f))}
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, someone else's
            pass


def worker_exiting() -> None:
    """A worker shutting down takes its live gauges (in-flight, up, circuit) with it."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]
