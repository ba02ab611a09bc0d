#!/usr/bin/env bash
# `make bench-pythons`: the benchmarks again on every other CPython 3.12+ this machine has (on
# PATH as python3.12 / python3.13, or under pyenv), each in its own environment
# (.venv-bench-<version>), its results saved beside the others with a -py<version> suffix.
set -euo pipefail
cd "$(dirname "$0")/.."
found=0
for version in 3.12 3.13; do
  python=""
  for candidate in "python$version" "$HOME"/.pyenv/versions/"$version".*/bin/python; do
    if "$candidate" -c 'import sys' >/dev/null 2>&1; then python="$candidate"; fi
  done
  if [ -z "$python" ]; then
    echo "bench-pythons: no Python $version here: skipped"
    continue
  fi
  found=1
  venv=".venv-bench-$version"
  if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -e '.[fastapi,uvloop]' httpx httptools
    touch "$venv/.installed"
  fi
  echo "== Python $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
  FLOWRT_BENCH_SUFFIX="-py$version" "$venv/bin/python" -m benchmarks
done
[ "$found" = 1 ] || echo "bench-pythons: no Python 3.12+ found"
