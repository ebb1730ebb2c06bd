#!/usr/bin/env bash
# The backfill benchmark on a GPU host (prepared for a lent device machine; see bench/README.md).
# Installs cmr-monitor with Ray into .venv, then scores the same 4,000 ACDC-like masks with the daemon on
# CUDA and with the Ray backfill on 1, 2 and 4 actors sharing the one GPU, on every core of the host,
# on SQLite and (when a server answers at $PG_ADMIN_URL) PostgreSQL. Prints the tables with the GPU's
# mean utilisation per run: near 100 % means the GPU is the bottleneck, not intake or the database.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[ray]"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print(torch.cuda.get_device_name())"
FILES=${FILES:-4000}
CPUS=$(nproc)
python bench/backfill.py --gpu --files "$FILES" --pool 200 --cpus "$CPUS" --workers 1,2,4 --batch 64 --write-batch 512
if [ -n "${PG_ADMIN_URL:-}" ]; then
    python bench/backfill.py --gpu --files "$FILES" --pool 200 --cpus "$CPUS" --workers 2,4 --batch 64 \
        --write-batch 512 --skip-daemon --db-url "$PG_ADMIN_URL"
fi
