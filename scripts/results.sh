#!/usr/bin/env bash
# Re-creates the grids behind docs/results.md, one named recipe each:
#   bash scripts/results.sh NAME [NAME ...]     e.g. tapt-epochs, tuned-tapt
#   bash scripts/results.sh --list              every name, with what it needs
# Each recipe prepares its corpus slices, runs its grid (resumable: run it again
# after an interruption and finished runs are skipped), its references, and
# publishes the report and per-run files into docs/results/NAME. Hours on 2 CPU
# cores; each config states its measured time. Two grids side by side with one
# torch thread each is how the committed numbers were made:
#   OMP_NUM_THREADS=1 bash scripts/results.sh tapt-epochs & OMP_NUM_THREADS=1 bash scripts/results.sh rotary-continual
# The general and domain corpora and the Debian task need a Debian host.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HEADLINE=(presets mini-presets rotary-scratch tapt-epochs rotary-continual tuned-tapt tuned-continual)
HISTORY=(scratch ablation adaptive continual long calibrate long6k continual-long6k adaptive6k
    adaptive-long6k ablation-long6k)

if [ "${1:-}" = "--list" ] || [ $# -eq 0 ]; then
    echo "headline grids (docs/results.md):"
    for n in "${HEADLINE[@]}"; do echo "  $n: $(grep -m1 '^# Needs:' "$root/configs/$n.yaml" | cut -c3-)"; done
    echo "history grids (docs/results/history.md): ${HISTORY[*]}"
    [ $# -eq 0 ] && { echo "usage: bash scripts/results.sh NAME [NAME ...]" >&2; exit 2; }
    exit 0
fi

source "$root/scripts/setup.sh"
cd "$root"
C=$(python -c "from femlm.files import cache_root; print(cache_root())")

slices() {  # the corpus slices the headline configs name (cheap; idempotent)
    femlm data fetch --pip-only
    [ -f "$C/corpora/domain.jsonl" ] || femlm data fetch --domain --tasks
    head -n 3000 "$C/tasks/movies/train.jsonl" > "$C/tasks/movies/tapt-3000.jsonl"
    head -n 2000 "$C/tasks/movies/train.jsonl" > "$C/tasks/movies/tapt-2000.jsonl"
    tail -n +2001 "$C/tasks/movies/train.jsonl" > "$C/tasks/movies/tapt-2000-heldout.jsonl"
    awk 'NR%80==1' "$C/corpora/domain.jsonl" > "$C/corpora/domain-1of80.jsonl"
    awk 'NR%120==1' "$C/corpora/domain.jsonl" > "$C/corpora/domain-1of120.jsonl"
    awk 'NR%40==21' "$C/corpora/domain.jsonl" > "$C/corpora/domain-21of40.jsonl"
}

random_init() {  # NAME TASK: the fine-tuning recipe on the untrained preset
    femlm finetune --model tiny --tokenizer runs/bbc-tokenizer --task "$2" --seeds 0 1 2 \
        --max-length 64 --metric macro_f1 --epochs 3 --patience 1 --max-train-examples 2000 \
        --out "runs/$1/random-init-finetune-$2.json"
}

headline() {
    local name=$1
    slices
    local warm=()  # the warm starts: the tuned grids need only the rotary tiny preset's
    [[ $name == tuned-* ]] && warm=(--variants tiny)
    [ "$name" = presets ] || [ -d runs/presets/tiny/seed-2/final ] ||
        femlm experiment configs/presets.yaml --no-report --processes "${FEMLM_PROCESSES:-1}" ${warm[@]+"${warm[@]}"}
    local carry=()  # the protocol's grids span sessions: each run is published into
    # docs/results/NAME as it finishes and restored from there, not re-run (docs/protocol.md,
    # amendment 1); FEMLM_CARRY=0 runs every cell again
    [[ $name == tuned-* ]] && [ "${FEMLM_CARRY:-1}" = 1 ] && carry=(--carry "docs/results/$name")
    # FEMLM_PROCESSES=2: the grid split between two processes (one torch thread each)
    femlm experiment "configs/$name.yaml" --no-report --processes "${FEMLM_PROCESSES:-1}" ${carry[@]+"${carry[@]}"}
    case "$name" in
        rotary-scratch|tapt-epochs) random_init "$name" movies ;;
        rotary-continual) random_init "$name" debian ;;
    esac
    case "$name" in
        presets) pairs=(--presets) ;;
        tapt-epochs) pairs=(--pair fe-epochs standard-r7 --pair fully-explored standard) ;;
        rotary-continual) pairs=(--pair fe-epochs standard-r7 --pair fully-explored standard) ;;
        *) pairs=() ;;
    esac
    python scripts/publish_results.py "runs/$name" "docs/results/$name" ${pairs[@]+"${pairs[@]}"}
}

history() {  # the BERT-tiny grids, as they were run (docs/results/history.md)
    local name=$1 part=()
    [ "$name" = adaptive6k ] && part=(--variants fully-explored standard --seeds 0)
    femlm experiment "configs/$name.yaml" --no-report ${part[@]+"${part[@]}"}
    femlm evaluate "runs/$name"  # every final model scored on hidden tokens (all [MASK])
    [ "$name" = adaptive6k ] || femlm report "runs/$name" --out "docs/results/$name"
}

for name in "$@"; do
    if [[ " ${HEADLINE[*]} " == *" $name "* ]]; then
        headline "$name"
    elif [[ " ${HISTORY[*]} " == *" $name "* ]]; then
        history "$name"
    else
        echo "results.sh: no grid named $name (bash scripts/results.sh --list)" >&2
        exit 2
    fi
done
