#!/usr/bin/env bash
# What CI cannot check: femlm on one CUDA GPU. Runs the test suite with CUDA
# visible (device "auto" picks it), the fp32 / bf16 / bf16+compile benchmark,
# a torchrun launch (one process: it starts no NCCL group, which needs two
# GPUs), the variance probe and a fine-tuning on the GPU.
# Every step runs even when one before it fails; the exit status says whether
# any failed. About 5-8 minutes on an H100.
#
#   bash scripts/gpu_check.sh CORPUS TOKENIZER [OUT_DIR]
#
# CORPUS is a text or JSONL file (a few MB is enough), TOKENIZER its tokenizer
# folder; fine-tuning uses the movies task under $FEMLM_CACHE (femlm data
# fetch --pip-only) and is skipped when it is missing. PYTEST_ARGS adds pytest
# flags (e.g. "-n 8" with pytest-xdist); PYTHON picks the interpreter.
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/gpu_check.sh CORPUS TOKENIZER [OUT_DIR]" >&2
  exit 2
fi
corpus=$1 tok=$2 out=${3:-runs/gpu-check}
py=${PYTHON:-python3}
failed=()
step() {  # step NAME COMMAND...: run, time and record a failure
  local name=$1 t0=$SECONDS
  shift
  echo
  echo "== $name"
  if "$@"; then echo "-- $name: ok ($((SECONDS - t0)) s)"
  else echo "-- $name: FAILED ($((SECONDS - t0)) s)"; failed+=("$name"); fi
}

"$py" - <<'EOF' || exit 1
import torch
assert torch.cuda.is_available(), "no CUDA device visible"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, "
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
EOF
mkdir -p "$out"

step "test suite, CUDA visible" "$py" -m pytest -q -p no:cacheprovider tests ${PYTEST_ARGS:-}
step "precision benchmark (small preset)" "$py" benchmarks/precision.py --device cuda \
  --model small --data "$corpus" --tokenizer "$tok" --steps 300 --batch 32 --views 7
step "torchrun, one process, bf16" "$py" -m torch.distributed.run --standalone \
  --nproc_per_node=1 -m femlm pretrain --data "$corpus" --tokenizer "$tok" --model tiny \
  --max-length 64 --batch-size 16 --max-steps 60 --eval-every 30 --save-every 30 \
  --device cuda --bf16 --out-dir "$out/ddp" --no-progress
step "saved weights are float32 safetensors" "$py" -c "
from safetensors.torch import load_file
dtypes = {str(t.dtype) for t in load_file('$out/ddp/final/model.safetensors').values()}
print(dtypes); assert dtypes == {'torch.float32'}, dtypes"
step "variance probe on the GPU" "$py" -m femlm variance --model "$out/ddp/final" \
  --data "$corpus" --max-length 64 --sequences 8 --draws 2 --bootstrap 50 \
  --device cuda --out-dir "$out/variance" --no-progress
if [ -d "${FEMLM_CACHE:-$HOME/.cache/femlm}/tasks/movies" ]; then
  step "fine-tuning on the GPU (movies, 2,000 examples)" "$py" -m femlm finetune \
    --model "$out/ddp/final" --task movies --seeds 0 --epochs 2 --lr 3e-4 \
    --max-train-examples 2000 --device cuda --out "$out/finetune-movies.json" --no-progress
else
  echo "(no movies task under \$FEMLM_CACHE: fine-tuning skipped)"
fi

echo
if [ ${#failed[@]} -eq 0 ]; then echo "gpu_check: every step passed"; exit 0; fi
printf 'gpu_check: FAILED: %s\n' "${failed[@]}"
exit 1
