#!/bin/bash
# The GPU measurements of BENCHMARKS.md ("On one H100"), most wanted first, each capped so that one slow row
# cannot eat the others' time. Run on a CUDA machine from the repository root:
#
#     bash bench/gpu_rows.sh DATA_DIR OUT_DIR [BUDGET_SECONDS]
#
# DATA_DIR: the raw dataset folder (e.g. ../shared/datasets/thermal_action_v1); OUT_DIR: where the JSON / markdown
# tables and logs go; BUDGET_SECONDS (default 1800): a row that would start with under 30 s left is skipped.
# Learnt on the first GPU run: the stock video-classification pipeline needs PyAV (`pip install av`), and cuDNN
# benchmark / torch.compile re-tune every new batch shape (bench_recipe.py now drops the last short batch).
# bench_recipe.py prints each row's training figures to the log as soon as they exist, so a row stopped by its cap
# in the inference part still leaves them.
set -u
DATA=${1:?usage: bash bench/gpu_rows.sh DATA_DIR OUT_DIR [BUDGET_SECONDS]}
OUT_DIR=${2:?usage: bash bench/gpu_rows.sh DATA_DIR OUT_DIR [BUDGET_SECONDS]}
BUDGET=${3:-1800}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
T0=$(date +%s)
LOG="$OUT_DIR/gpu_rows.log"

# row NAME CAP_S CMD...: stdout -> NAME.md, stderr -> the log; capped by CAP_S and by what is left of the budget.
row() {
    local name=$1 cap=$2 left
    shift 2
    left=$((BUDGET - ($(date +%s) - T0)))
    [ "$cap" -gt "$left" ] && cap=$left
    if [ "$cap" -lt 30 ]; then
        echo "[gpu_rows] skip $name (${left} s of the budget left)" | tee -a "$LOG"
        return
    fi
    echo "[gpu_rows] +$(($(date +%s) - T0)) s: $name (cap ${cap} s)" | tee -a "$LOG"
    timeout "$cap" "$@" >"$OUT_DIR/$name.md" 2>>"$LOG"
    echo "[gpu_rows] $name: exit status $?" | tee -a "$LOG"
    tail -n 3 "$OUT_DIR/$name.md"
}

"$PY" -c "import av, torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" \
    || { echo "gpu_rows: needs a CUDA device and PyAV (pip install av)" >&2; exit 2; }
B=("$PY" bench/bench_recipe.py --real-data "$DATA" --device cuda --bf16 --cudnn-benchmark --repeats 10)

# Most wanted first (a lent machine has 15 minutes in all, start-up included: BUDGET ~500 fits the first three).
# R50 at 256 x 384 (target >= 300 training clips/s on one H100) and the native recipe (target >= 1500).
row r50_b16_cl 170 "${B[@]}" --channels-last recipes/slowfast.yaml --batch-size 16 --warmup-steps 4 --steps 24 \
    --json "$OUT_DIR/r50_b16_cl.json" -- --dataloader_num_workers 12
row native_b256 120 "${B[@]}" --channels-last --data-workers 12 recipes/thermal_native.yaml --batch-size 256 \
    --warmup-steps 3 --steps 12 --json "$OUT_DIR/native_b256.json" -- --dataloader_num_workers 12 \
    --dataloader_persistent_workers true
# The native recipe's harness as shipped (scores on a GPU, and its time to train).
row harness_native_grouped 200 "$PY" -m thermal_hf benchmark recipes/thermal_native.yaml --dataset "$DATA" \
    --protocol grouped --seeds 3 --output "$OUT_DIR/harness_native_grouped"
row r50_b16_compile 240 "${B[@]}" --channels-last --compile recipes/slowfast.yaml --batch-size 16 --warmup-steps 8 \
    --steps 12 --json "$OUT_DIR/r50_b16_compile.json" -- --dataloader_num_workers 12
row r50_b4 150 "${B[@]}" recipes/slowfast.yaml --warmup-steps 5 --steps 30 --json "$OUT_DIR/r50_b4.json" \
    -- --dataloader_num_workers 4
row native_b16 120 "${B[@]}" recipes/thermal_native.yaml --warmup-steps 5 --steps 30 --json "$OUT_DIR/native_b16.json"
# R50 under the harness with fewer epochs (labelled as such in BENCHMARKS.md): for a longer lease.
row harness_r50_grouped 900 "$PY" -m thermal_hf benchmark recipes/slowfast.yaml --dataset "$DATA" \
    --protocol grouped --seeds 3 --output "$OUT_DIR/harness_r50_grouped" \
    -- --target keyframe --num_train_epochs 30 --warmup_epochs 3 --eval_strategy no --callbacks none \
    --dataloader_num_workers 12
echo "[gpu_rows] done in $(($(date +%s) - T0)) s; tables in $OUT_DIR/*.md" | tee -a "$LOG"
