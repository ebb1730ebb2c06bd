#!/usr/bin/env bash
# Install cmr-monitor with its test dependencies into .venv and run the whole test suite.
# Used by the README and by .ci/run. Needs python3 >= 3.11; PostgreSQL at 127.0.0.1:5432
# (database `test`) for the database tests, which fail under CI=true when it is unreachable.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

# Debian packages the tests drive for real: Chromium (dashboard browser test), Prometheus and
# promtool (alert rules and a real scrape of the daemon).
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing Debian packages: ${need[*]} (install them with apt-get)" >&2
    fi
fi
VENV=${CMR_MONITOR_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev,ray]"

# PostgreSQL: start the local cluster if it is installed but not running (CI machines start it already).
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
fi

ruff check .
ruff format --check .

# Two workers (pytest-xdist), a test file each at a time so that module fixtures (a Ray cluster, an
# archive of phantoms) are built once: the suite is CPU-bound but waits on its subprocesses (daemons,
# Prometheus, a browser) often enough that two workers on 2 cores took 871 s where one took 1298 s.
# CMR_MONITOR_TEST_WORKERS=0 runs it in this process, as plain pytest does.
workers=${CMR_MONITOR_TEST_WORKERS:-2}
xdist=()
if [ "$workers" != "0" ]; then
    xdist=(-n "$workers" --dist loadfile)
fi
set +e
python -m pytest "${xdist[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests (exit 5): treating as failure-free but reporting it" >&2
    rc=0
fi
exit "$rc"
