"""The gateway's app as a module attribute, for servers without a factory option
(bench_servers.py): settings from the environment, as `uvicorn --factory` workers build it."""

from gateway.app import create_app_from_env

app = create_app_from_env()
