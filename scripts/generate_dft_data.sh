#!/usr/bin/env bash
# Label the bundled datasets with GPAW, in the order the course needs them.
# Resumable: finished structures are skipped, so rerunning continues where it stopped,
# and a second copy may run at the same time (each structure is claimed by one runner).
# Usage: nohup scripts/generate_dft_data.sh [WORKERS] [DATASET...] > course-work/dft-generate.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
workers=${1:-1}
shift || true
datasets=${*:-"mgo-rattled li-o-phases mini-mptrj li2o-md mini-omat"}
for name in $datasets; do
    .venv/bin/course make-data "$name" --workers "$workers"
done
