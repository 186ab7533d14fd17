#!/usr/bin/env bash
# Re-creates everything behind docs/results.md: the experiment grids
# (resumable: run it again after an interruption and finished runs are
# skipped) and their reports under docs/results/NAME/. Hours on 2 CPU cores;
# each config states its measured time. The general and domain corpora need a
# Debian host: run `femlm data fetch` once first (docs/corpora.md). Two grids at a time with one thread each
# is how the committed numbers were made (about 1.5x the throughput of one
# grid on two threads on a 2-core machine):
#   OMP_NUM_THREADS=1 bash scripts/results.sh scratch continual &
#   OMP_NUM_THREADS=1 bash scripts/results.sh ablation adaptive
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(scratch ablation adaptive continual long calibrate long6k
    continual-long6k adaptive6k adaptive-long6k ablation-long6k)
for name in "${names[@]}"; do
    part=()  # adaptive6k: only seed 0 of two variants ran (both stayed on the plateau)
    [ "$name" = adaptive6k ] && part=(--variants fully-explored standard --seeds 0)
    femlm experiment "configs/$name.yaml" --no-report ${part[@]+"${part[@]}"}
    femlm evaluate "runs/$name"  # every final model scored on hidden tokens (all [MASK])
    case "$name" in
        continual) start=runs/scratch/standard/seed-0/final ;;
        continual-long6k) start=runs/long6k/standard/seed-0/final ;;
        *) start= ;;
    esac
    if [ -n "$start" ]; then
        # the reference: the start model fine-tuned without continual pre-training
        for task in debian bbc movies; do
            femlm finetune --model "$start" --task "$task" \
                --lrs 3e-4 1e-3 --seeds 0 1 2 --epochs 3 --patience 1 --max-train-examples 2000 \
                --max-length 128 --out "runs/$name-reference/finetune-$task.json"
        done
    fi
    if [ "$name" = continual-long6k ]; then
        # movies again with its full training set (the 2,000-example cap collapses it)
        for run in runs/$name/*/seed-* runs/$name-reference; do
            model="$run/final"; seeds=0
            [ -d "$model" ] || { model="$start"; seeds="0 1 2"; }
            # shellcheck disable=SC2086
            femlm finetune --model "$model" --task movies --lrs 3e-4 1e-3 --seeds $seeds \
                --epochs 3 --patience 1 --max-length 128 --out "$run/finetune-movies-full.json"
        done
        # and with the current recipe (up to 10 epochs, patience 3, lr 3e-4); its
        # reference is adaptive-long6k's (the same start model and recipe)
        for run in runs/$name/*/seed-*; do
            femlm finetune --model "$run/final" --task movies --seeds 0 --lr 3e-4 \
                --out "$run/finetune-movies-e10.json"
        done
    fi
    if [ "$name" = adaptive-long6k ]; then
        # references on movies with the runs' recipe: the start model without
        # task-adaptive pre-training, and the same architecture without any
        ref=runs/$name-reference
        femlm finetune --model runs/long6k/standard/seed-0/final --task movies --seeds 0 1 2 \
            --epochs 10 --patience 3 --lr 3e-4 --out "$ref/finetune-movies.json"
        femlm finetune --model bert-tiny --tokenizer runs/scratch/tokenizer --dropout 0 --task movies \
            --seeds 0 1 2 --epochs 10 --patience 3 --lr 3e-4 \
            --out "$ref/finetune-movies-random-init.json"
        femlm finetune --model runs/long6k/standard/seed-0/final --task debian --seeds 0 \
            --lr 1e-3 --out "$ref/finetune-debian.json"
    fi
    # adaptive6k has one seed per variant: no report (docs/results.md gives its numbers)
    [ "$name" = adaptive6k ] || femlm report "runs/$name" --out "docs/results/$name"
done
