#!/usr/bin/env bash
# The "new user" check: in a fresh clone of this repository, run README's commands as written.
#
# What it does:
#   1. clones the repository's committed HEAD into a temporary folder (nothing uncommitted travels);
#   2. installs that clone the README's way, except that torch and the other dependencies come from an
#      already built environment (CMR_MONITOR_VENV, default ./.venv) instead of the network: a fresh venv
#      sees that environment's packages through a .pth file and gets the clone with `pip install --no-deps
#      -e .` (CMR_MONITOR_SMOKE_FULL=1 installs everything from the index instead, as README does);
#   3. runs the README's quick-start demo with --fast instead of the three-minute run, then every
#      command of the README blocks marked `<!-- smoke -->`, as written, with `bash -euo pipefail`.
#      With CMR_MONITOR_SMOKE_DEMO=DIR, a folder where `cmr-monitor demo --fast` already ran (its
#      cmr-monitor-demo/ and its output in demo.out), that run is copied into the clone instead (the
#      test suite runs the demo once and shares it); the clone then only imports the demo's modules.
#
# Usage: bash scripts/smoke.sh            (tests/test_smoke.py runs it in CI)
# Needs: git, python3 >= 3.11, and the built environment (bash scripts/test.sh makes it).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BASE_VENV=${CMR_MONITOR_VENV:-$REPO/.venv}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cmr-monitor-smoke.XXXXXX")
KEEP=${CMR_MONITOR_SMOKE_KEEP:-0}
cleanup() { if [ "$KEEP" = "1" ]; then echo "smoke: kept $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

echo "smoke: fresh clone of $(git -C "$REPO" rev-parse --short HEAD) in $WORK/clone"
git clone --quiet --no-hardlinks "$REPO" "$WORK/clone"
cd "$WORK/clone"

# --- install (README: python3 -m venv .venv && . .venv/bin/activate && pip install torch... && pip install -e .)
python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
if [ "${CMR_MONITOR_SMOKE_FULL:-0}" = "1" ]; then
    pip install --quiet torch==2.13.0
    pip install --quiet -e .
else
    base_site=$("$BASE_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    own_site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    echo "$base_site" > "$own_site/_cmr_monitor_smoke_base.pth"
    # the base environment first on the path: its setuptools (>= 68, as pyproject needs) builds the clone
    PYTHONPATH="$base_site" python -m pip install --quiet --no-deps --no-build-isolation -e .
fi
command -v cmr-monitor | grep -q "^$WORK/clone/.venv/bin/" || { echo "smoke: cmr-monitor not from the clone" >&2; exit 1; }
python - <<'PY'
import monitor, pathlib, sys
here = pathlib.Path.cwd().resolve()
if not pathlib.Path(monitor.__file__).resolve().is_relative_to(here):
    sys.exit(f"smoke: monitor imported from {monitor.__file__}, not from the clone")
PY

# --- the README's commands
unset CMR_MONITOR_CONFIG CMR_MONITOR_DATABASE_URL CMR_MONITOR_ARTIFACTS_DIR
export COLUMNS=${COLUMNS:-120}
if [ -n "${CMR_MONITOR_SMOKE_DEMO:-}" ]; then
    echo "smoke: cmr-monitor demo --fast, as run in $CMR_MONITOR_SMOKE_DEMO"
    cp -R "$CMR_MONITOR_SMOKE_DEMO/cmr-monitor-demo" "$CMR_MONITOR_SMOKE_DEMO/demo.out" .
    python -c "import monitor.cli.demo, monitor.sim.demo, monitor.daemon, dashboard.launch"
else
    echo "smoke: cmr-monitor demo --fast"
    cmr-monitor demo --fast --device cpu > demo.out
fi
tail -n 8 demo.out
python - <<'PY' > readme-commands.sh
import re, sys
text = open("README.md").read()
blocks = re.findall(r"<!-- smoke -->\s*```bash\n(.*?)```", text, flags=re.S)
if not blocks:
    sys.exit("smoke: README has no block marked <!-- smoke -->")
print("\n".join(blocks))
PY
echo "smoke: README commands:"
sed 's/^/  | /' readme-commands.sh
bash -euo pipefail -x readme-commands.sh
echo "smoke: ok"
