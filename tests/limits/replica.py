"""Test only: one gateway replica as its own process, with the test tenant step.

    python -m tests.limits.replica      # settings from GATEWAY_* like `gateway serve`

Serves exactly as `gateway serve` does (uvloop, httptools), with tests.limits.conftest's
`pipeline` so requests can name their tenant before authentication exists.
"""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.logging import configure_logging
from gateway.settings import Settings
from tests.limits.conftest import pipeline


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, policies=pipeline)
    uvicorn.run(app, host=settings.host, port=settings.port, loop="uvloop", http="httptools",
                access_log=False, server_header=False, log_config=None, proxy_headers=False)


if __name__ == "__main__":
    main()
