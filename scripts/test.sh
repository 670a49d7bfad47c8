#!/usr/bin/env bash
# The README's test command: install what the suite needs (system tools as root with apt-get,
# discoro with its test tools with the current python's pip), check lint, format and types,
# then run the whole suite under coverage inside a private network namespace that has only
# loopback, so no test can reach another machine even by mistake.
#
# Coverage is measured across every Python process the suite starts (pyproject.toml,
# [tool.coverage.*]), combined, and printed as a short table; the run fails below its
# fail_under. Extra arguments go to pytest (a partial run still prints the table but is not
# held to fail_under). DISCORO_TEST_COVERAGE=0 runs the suite without coverage.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)  # test_tls makes certificates
# the status page's browser test drives headless chromium
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)  # test_systemd_units verifies units
# the discoro ssh tests run real OpenSSH servers (sshd, ssh-keygen) in network namespaces
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${need_apt[*]} with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        echo "warning: missing ${need_apt[*]} (install them, or run as root with apt-get)" >&2
    fi
fi

python -m pip install -q -e '.[test]'
python -m ruff check src tests bench examples
python -m ruff format --check src tests bench examples
python -m mypy

if [ "${DISCORO_TEST_COVERAGE:-1}" = 0 ]; then
    exec unshare -n -- sh -c 'ip link set lo up && exec python -m pytest "$@"' pytest "$@"
fi

# Data files live in a private temporary directory, never in the checkout.
COVERAGE_FILE="$(mktemp -d "${TMPDIR:-/tmp}/discoro-coverage.XXXXXX")/.coverage"
export COVERAGE_FILE
trap 'rm -rf "$(dirname "$COVERAGE_FILE")"' EXIT
python -m coverage erase

status=0
unshare -n -- sh -c 'ip link set lo up && exec python -m coverage run -m pytest "$@"' \
    pytest "$@" || status=$?

python -m coverage combine --quiet
fail_under=()
[ $# -eq 0 ] || fail_under=(--fail-under=0)
python -m coverage report "${fail_under[@]}" || { [ "$status" -ne 0 ] || status=$?; }
exit "$status"
