#!/usr/bin/env bash
# What CI needs before `make test` beyond the README's prerequisites (Python 3.11+,
# make, Go): only uv, the lock-file installer. Every binary the tests run
# (control plane, helm, prometheus, promtool) is built from its Go module by `make tools`.
set -euo pipefail
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet 'uv>=0.5'
