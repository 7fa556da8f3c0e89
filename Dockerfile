# syntax=docker/dockerfile:1
# Pleno's production image. Build: `make image` (or `docker build -t pleno .`); README "Container image".
# The base is an argument so the integration test can build on a local stand-in (no registry there).
ARG BASE_IMAGE=python:3.11-slim
# checkov:skip=CKV_DOCKER_7:FROM uses ${BASE_IMAGE}, whose default carries the pinned tag 3.11-slim

# --- builder: the locked, hash-checked dependencies and the package, in one relocatable venv ---
FROM ${BASE_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first: this layer is reused until requirements.lock changes.
COPY requirements.lock ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
# The runtime sets PYTHONDONTWRITEBYTECODE and its root filesystem is read-only, so compile here:
# otherwise every start recompiles every module. pip is dropped: nothing installs at run time.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/pip uninstall --yes --quiet pip \
    && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv

# --- runtime: the base interpreter, the venv, an unprivileged user; nothing else ---
FROM ${BASE_IMAGE} AS runtime
ARG VERSION=0.0.0+unknown
ARG COMMIT=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="pleno" \
      org.opencontainers.image.description="A production-grade FastAPI service" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${BUILD_DATE}"

# Fixed numeric IDs: Kubernetes' runAsNonRoot can verify them, and volume ownership is stable.
# /var/lib/pleno is the only writable path besides /tmp (run with a read-only root filesystem).
RUN groupadd --system --gid 10001 pleno \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin pleno \
    && mkdir -p /var/lib/pleno \
    && chown 10001:10001 /var/lib/pleno \
    && chmod 0750 /var/lib/pleno
COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PLENO_HOST=0.0.0.0 \
    PLENO_PORT=8000 \
    PLENO_LOG_FORMAT=json \
    PLENO_DATABASE_URL=sqlite:////var/lib/pleno/pleno.db \
    PLENO_BUILD_COMMIT=${COMMIT} \
    PLENO_BUILD_DATE=${BUILD_DATE}

VOLUME ["/var/lib/pleno"]
WORKDIR /var/lib/pleno
USER 10001:10001
EXPOSE 8000
# slim has no curl: probe /health with the interpreter the service already ships.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PLENO_PORT', '8000') + '/health', timeout=2)"]
# Exec form: pleno is PID 1 and receives SIGTERM itself (graceful shutdown, README).
ENTRYPOINT ["pleno"]
CMD ["serve"]
