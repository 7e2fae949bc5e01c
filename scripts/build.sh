#!/bin/bash
# SPDX-License-Identifier: MIT
# Configure and build into DIR (default build/). Extra arguments go to cmake.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/build}
shift || true
cmake -S "$top" -B "$dir" -DRG_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
