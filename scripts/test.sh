#!/usr/bin/env bash
# The README's test command: install discoro with its test tools, check lint and types, then
# run the whole suite inside a private network namespace that has only loopback, so no test
# can reach another machine even by mistake.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e '.[test]'
python -m ruff check src tests bench examples
python -m mypy
exec unshare -n -- sh -c 'ip link set lo up && exec python -m pytest "$@"' pytest "$@"
