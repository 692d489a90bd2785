#!/usr/bin/env bash
# Every INTERVAL seconds (default 600): commit the finished DFT results (data/dft-runs), so no
# result is left uncommitted. A dataset is assembled into data/datasets/ only once every one
# of its structures is finished: the shipped files stay complete (tests/test_bundled_datasets.py)
# while a recipe grows. A dataset already assembled from exactly these results is left alone.
# Usage: scripts/dft_commit_loop.sh [INTERVAL]
set -u
cd "$(dirname "$0")/.."
interval=${1:-600}
commit_chunk() {
    local paths=(data/dft-runs)
    for dir in data/dft-runs/*/; do
        name=$(basename "$dir")
        [ -f "$dir/inputs.extxyz" ] || continue
        planned=$(grep -c '^[0-9][0-9]*$' "$dir/inputs.extxyz")
        finished=$(find "$dir" -maxdepth 1 -name '*.extxyz' ! -name 'inputs.extxyz' ! -name 'md-*' | wc -l)
        shipped=$(grep -o '"structures_finished": [0-9]*' "data/datasets/$name.json" 2>/dev/null | grep -o '[0-9]*$')
        if [ "$finished" -ge "$planned" ] && [ "${shipped:-0}" != "$finished" ]; then
            .venv/bin/course make-data "$name" --assemble-only > /dev/null 2>&1 || true
            for ext in extxyz json; do
                [ -f "data/datasets/$name.$ext" ] && paths+=("data/datasets/$name.$ext")
            done
        fi
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
    echo "$(date -u +%FT%TZ) committed chunk: $(find data/dft-runs -maxdepth 2 -name '*.extxyz' ! -name 'inputs.extxyz' ! -name 'md-*' | wc -l) result files"
    sleep "$interval"
done
