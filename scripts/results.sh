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
HEADLINE=(presets mini-presets rotary-scratch tapt-epochs rotary-continual tuned-tapt tuned-continual
    tuned-epochs-tapt tuned-epochs-continual tuned-mini)
HISTORY=(scratch ablation adaptive continual long calibrate long6k continual-long6k adaptive6k
    adaptive-long6k ablation-long6k)

if [ "${1:-}" = "--list" ] || [ $# -eq 0 ]; then
    echo "headline grids (docs/results.md):"
    for n in "${HEADLINE[@]}"; do
        if [ -f "$root/configs/$n.yaml" ]; then
            echo "  $n: $(grep -m1 '^# Needs:' "$root/configs/$n.yaml" | cut -c3-)"
        else
            echo "  $n: not written yet (scripts/protocol_grid.py writes it from the stages before)"
        fi
    done
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

parallel() {  # run each argument (a command line) with at most FEMLM_PROCESSES at once
    local running=0 failed=0
    for job in "$@"; do
        if [ "$running" -ge "${FEMLM_PROCESSES:-1}" ]; then wait -n || failed=1; running=$((running - 1)); fi
        bash -c "$job" & running=$((running + 1))
    done
    while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
    return $failed
}

reference() {  # NAME FILE ARGS...: one stage-F reference of grid NAME, carried like its runs
    local name=$1 file=$2 carried="docs/results/$1/$2" out="runs/$1/$2"
    shift 2
    [ -f "$out" ] || { [ -f "$carried" ] && cp "$carried" "$out"; } || {
        femlm finetune "$@" --max-length 64 --metric macro_f1 --threads 1 --no-progress --out "$out" &&
            cp "$out" "$carried"
    }
}

tuned_references() {  # NAME TASK: stage F's references (docs/protocol.md): the three warm
    # starts and the untrained preset, probed on both tasks and fine-tuned on TASK
    local name=$1 task=$2 jobs=() ft="--lrs 0.0003 0.001 0.003 --epochs 10 --patience 3"
    mkdir -p "runs/$name" "docs/results/$name"
    python scripts/start_fingerprints.py runs/presets/tiny/seed-{0,1,2}/final > "runs/$name/start-fingerprints.json"
    for t in movies debian; do
        jobs+=("reference $name probe-random-init-$t.json --model tiny --tokenizer runs/bbc-tokenizer --task $t --method linear-probe --seeds 0 1 2")
        for s in 0 1 2; do
            jobs+=("reference $name probe-start-seed$s-$t.json --model runs/presets/tiny/seed-$s/final --task $t --method linear-probe --seeds 0")
        done
    done
    jobs+=("reference $name random-init-finetune-$task.json --model tiny --tokenizer runs/bbc-tokenizer --task $task --seeds 0 1 2 $ft")
    for s in 0 1 2; do
        jobs+=("reference $name start-seed$s-finetune-$task.json --model runs/presets/tiny/seed-$s/final --task $task --seeds 0 1 2 $ft")
    done
    export -f reference
    cp "runs/$name/start-fingerprints.json" "docs/results/$name/"
    parallel "${jobs[@]}"
}

headline() {
    local name=$1 failed=""
    slices
    local warm=()  # the warm starts: the tuned grids need only the rotary tiny preset's
    [[ $name == tuned-* ]] && warm=(--variants tiny)
    [ "$name" = presets ] || [ "$name" = tuned-mini ] || [ -d runs/presets/tiny/seed-2/final ] ||
        femlm experiment configs/presets.yaml --no-report --processes "${FEMLM_PROCESSES:-1}" ${warm[@]+"${warm[@]}"}
    if [ "$name" = tuned-mini ]; then  # stage D's starts, each extended until 1 nat below unigram
        [ -d runs/mini-presets/mini/seed-2/final ] ||
            femlm experiment configs/mini-presets.yaml --no-report --processes "${FEMLM_PROCESSES:-1}"
        python scripts/mini_starts.py
    fi
    local carry=()  # the protocol's grids span sessions: each run is published into
    # docs/results/NAME as it finishes and restored from there, not re-run (docs/protocol.md,
    # amendment 1); FEMLM_CARRY=0 runs every cell again
    [[ $name == tuned-* ]] && [ "${FEMLM_CARRY:-1}" = 1 ] && carry=(--carry "docs/results/$name")
    # FEMLM_PROCESSES=2: the grid split between two processes (one torch thread each)
    if grep -q '^  exploratory-' "configs/$name.yaml"; then  # the protocol's runs first, then
        # the arms added after results were seen (docs/protocol.md, amendment 4)
        local planned=()
        mapfile -t planned < <(python -c "import sys, yaml; print(*(n for n in yaml.safe_load(
            open(sys.argv[1]))['runs'] if not n.startswith('exploratory-')), sep='\n')" "configs/$name.yaml")
        femlm experiment "configs/$name.yaml" --no-report --processes "${FEMLM_PROCESSES:-1}" \
            ${carry[@]+"${carry[@]}"} --variants "${planned[@]}"
    fi
    femlm experiment "configs/$name.yaml" --no-report --processes "${FEMLM_PROCESSES:-1}" ${carry[@]+"${carry[@]}"}
    case "$name" in
        rotary-scratch|tapt-epochs) random_init "$name" movies ;;
        rotary-continual) random_init "$name" debian ;;
        # a failed reference is reported at the end; the report is published first
        tuned-tapt) tuned_references "$name" movies || failed="references of $name" ;;
        tuned-continual) tuned_references "$name" debian || failed="references of $name" ;;
    esac
    case "$name" in
        presets) pairs=(--presets) ;;
        tapt-epochs) pairs=(--pair fe-epochs standard-r7 --pair fully-explored standard) ;;
        rotary-continual) pairs=(--pair fe-epochs standard-r7 --pair fully-explored standard) ;;
        *) pairs=() ;;
    esac
    python scripts/publish_results.py "runs/$name" "docs/results/$name" ${pairs[@]+"${pairs[@]}"}
    # stage E's own report: best against best by budget, the rule of thumb, H (stage G)
    [[ $name != tuned-epochs-* ]] || python scripts/epochs_study.py "${name#tuned-epochs-}"
    if [ -n "${failed:-}" ]; then echo "results.sh: $failed failed (errors above)" >&2; return 1; fi
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
