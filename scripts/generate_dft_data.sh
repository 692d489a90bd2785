#!/usr/bin/env bash
# Label the four bundled datasets with GPAW, in the order the course needs them.
# Resumable: finished structures are skipped, so rerunning continues where it stopped,
# and a second copy may run at the same time (each structure is claimed by one runner).
# Usage: nohup scripts/generate_dft_data.sh [WORKERS] > course-work/dft-generate.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
workers=${1:-1}
course=.venv/bin/course
md_ready() { [ -f data/dft-runs/li2o-md/md-300K-seed3.extxyz ] && [ -f data/dft-runs/li2o-md/md-1200K-seed4.extxyz ]; }
# While the CHGNet MD behind li2o-md is still running elsewhere, start on MgO.
md_ready || $course make-data mgo-rattled --limit 40 --workers "$workers"
for _ in $(seq 60); do md_ready && break; sleep 30; done
$course make-data li2o-md --limit 60 --workers "$workers"   # both temperatures, early
$course make-data mgo-rattled --workers "$workers"
$course make-data li-o-phases --workers "$workers"
$course make-data mini-mptrj --workers "$workers"
$course make-data li2o-md --workers "$workers"
