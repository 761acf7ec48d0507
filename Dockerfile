# syntax=docker/dockerfile:1
# The scheduler-extender image: `make image`. The same image runs `serve` (the extender) and
# `controller` (the AgentAutoscaler controller); the Helm chart picks the subcommand.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# -- build: a virtual environment with exactly the locked runtime dependencies and the project.
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when the lock changes. --locked fails the
# build if uv.lock does not match pyproject.toml; --no-dev leaves the test and lint tools out.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project
COPY README.md ./
COPY scheduler_extender ./scheduler_extender
# --no-editable installs the project as a wheel, so the final stage needs no source tree.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# -- runtime: the interpreter and the virtual environment; no uv, no compilers, no source.
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric non-root user, so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8888
ENTRYPOINT ["scheduler-extender"]
CMD ["serve", "--host", "0.0.0.0"]
