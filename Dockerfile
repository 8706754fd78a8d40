# taskflow image: one image, three roles chosen by the command (`api`, `worker`, `migrate`).
#   docker build -t taskflow .
#   docker run --rm taskflow --help

# ---- builder: install taskflow and its dependencies into a self-contained virtualenv ----------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build
# README.md is named by pyproject.toml; the wildcard keeps the build working while it is absent.
COPY pyproject.toml README.md* ./
COPY src ./src
# The runtime dependencies only: the `dev` extra (tests, linters) stays out of the image.
RUN pip install .

# ---- runtime: the virtualenv on a clean slim base, run as an unprivileged user ----------------
FROM python:3.11-slim AS runtime

# TASKFLOW_HOST: inside a container the API must listen on every interface, not loopback.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TASKFLOW_HOST=0.0.0.0

RUN groupadd --system --gid 10001 taskflow \
 && useradd --system --uid 10001 --gid taskflow --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin taskflow \
 && mkdir /app \
 && chown taskflow:taskflow /app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Numeric, so that orchestrators enforcing "run as non-root" can verify it.
USER 10001:10001

EXPOSE 8000

# The slim base has no curl; the standard library is enough. This checks `api`; the compose
# file gives `worker` its own (on TASKFLOW_WORKER_HTTP_PORT) and disables it for `migrate`.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('TASKFLOW_PORT', '8000'), timeout=3)"]

# Exec form: taskflow is PID 1 and receives SIGTERM itself, so workers drain on `docker stop`.
ENTRYPOINT ["taskflow"]
CMD ["api"]
