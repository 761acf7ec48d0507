#!/usr/bin/env bash
# System packages the tests need that a fresh machine may lack (Debian).
set -euo pipefail
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
if ((${#need[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "error: missing ${need[*]}; install with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "installing ${need[*]} from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet 'uv>=0.5'
