#!/usr/bin/env bash
# Every INTERVAL seconds (default 600): re-assemble the DFT datasets from the finished
# results and commit data/dft-runs plus the assembled files, so no result is left uncommitted.
# Usage: scripts/dft_commit_loop.sh [INTERVAL]
set -u
cd "$(dirname "$0")/.."
interval=${1:-600}
datasets="li2o-md mgo-rattled li-o-phases mini-mptrj"
commit_chunk() {
    local paths=(data/dft-runs)
    for name in $datasets; do
        if [ -f "data/dft-runs/$name/inputs.extxyz" ]; then
            .venv/bin/course make-data "$name" --assemble-only > /dev/null 2>&1 || true
        fi
        for ext in extxyz json; do
            [ -f "data/datasets/$name.$ext" ] && paths+=("data/datasets/$name.$ext")
        done
    done
    for attempt in 1 2 3 4 5; do
        if [ ! -e .git/index.lock ]; then
            git add "${paths[@]}" && git commit -q -m "DFT data: chunk" -- "${paths[@]}" && return 0
            git diff --cached --quiet -- "${paths[@]}" && return 0   # nothing new
        fi
        sleep 5
    done
}
while true; do
    commit_chunk
    echo "$(date -u +%FT%TZ) committed chunk: $(ls data/dft-runs/*/[!.]*.extxyz 2>/dev/null | grep -vc inputs) result files"
    sleep "$interval"
done
