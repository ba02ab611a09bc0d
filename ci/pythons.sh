#!/usr/bin/env bash
# Every other CPython 3.12+ this machine has (on PATH as python3.12 / python3.13, or under
# pyenv), each in its own environment (.venv-py<version>):
#   bash ci/pythons.sh bench   the benchmarks, results saved with a -py<version> suffix
#   bash ci/pythons.sh test    the engine's semantics tests (eager task starts run there)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-bench}"
TESTS=(tests/test_semantics_model.py tests/test_native.py tests/test_scheduler.py
  tests/test_run.py tests/test_cancel.py tests/test_events.py tests/test_kinds.py
  tests/test_map_views.py tests/test_current.py tests/test_fast.py tests/test_disconnect.py
  tests/test_attempt.py)
found=0
for version in 3.12 3.13; do
  python=""
  for candidate in "python$version" "$HOME"/.pyenv/versions/"$version".*/bin/python; do
    if "$candidate" -c 'import sys' >/dev/null 2>&1; then python="$candidate"; fi
  done
  if [ -z "$python" ]; then
    echo "pythons: no Python $version here: skipped"
    continue
  fi
  found=1
  venv=".venv-py$version"
  if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet -e '.[otel,fastapi,uvloop,postgres]' opentelemetry-sdk httpx \
      httptools pytest pytest-timeout hypothesis trio
    touch "$venv/.installed"
  fi
  echo "== Python $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
  if [ "$mode" = test ]; then
    "$venv/bin/python" -m pytest -q "${TESTS[@]}"
  else
    FLOWRT_BENCH_SUFFIX="-py$version" "$venv/bin/python" -m benchmarks
  fi
done
[ "$found" = 1 ] || echo "pythons: no Python 3.12+ found"
