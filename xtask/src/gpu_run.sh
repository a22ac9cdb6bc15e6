#!/usr/bin/env bash
# kiln's GPU checks, from a bundle made by `cargo xtask gpu-bundle DIR` (no Rust needed
# here): the CUDA kernel tests, `fit` on the GPU against the CPU, the GPU benchmark,
# PyTorch on the same GPU, the report (gpu.md), the quickstart trained one epoch on
# the GPU and on the CPU, and each kernel's time in a training step (where Nsight
# Compute is installed), all written to OUT_DIR. The whole run keeps within
# KILN_GPU_SECONDS (540 by default): each step gets what is left, most important
# first.
#
#     ./run.sh OUT_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkdir -p "$out"
cd "$here"
deadline=$(( $(date +%s) + ${KILN_GPU_SECONDS:-540} ))
log() { echo "== $*" | tee -a "$out/summary.txt"; }
# Seconds a step may take: its own limit, or what is left of the run (at least one:
# `timeout 0` would mean no limit at all).
budget() {
    local left=$(( deadline - $(date +%s) ))
    [ "$left" -lt 1 ] && left=1
    [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}

nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
# NVRTC compiles the kernels: the toolkit's, else the first one on the machine.
if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
    nvrtc=$(ls /usr/local/cuda/lib64/libnvrtc.so* 2>/dev/null | head -n 1)
    [ -n "$nvrtc" ] || nvrtc=$(find / -xdev -name 'libnvrtc.so.1[3-9]*' 2>/dev/null | head -n 1)
    [ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
log "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

log "CUDA kernel tests (every test with cuda in its name)"
timeout "$(budget 150)" bin/kernels-tests cuda --test-threads 4 > "$out/tests.txt" 2>&1
echo "exit $?" >> "$out/tests.txt"
grep -E '^test result|FAILED|panicked' "$out/tests.txt" | tee -a "$out/summary.txt"

log "fit on the GPU against the CPU, and device allocations in a steady step"
timeout "$(budget 120)" bin/training-tests --test-threads 1 --nocapture > "$out/training-tests.txt" 2>&1
echo "exit $?" >> "$out/training-tests.txt"
grep -E '^test |^test result|one epoch|panicked|skipped' "$out/training-tests.txt" | tee -a "$out/summary.txt"

log "GPU benchmark"
CRITERION_HOME="$out/criterion" timeout "$(budget 180)" bin/gpu-bench --bench --warm-up-time 1 \
    --measurement-time 3 > "$out/gpu-bench.txt" 2>&1
echo "exit $?" >> "$out/gpu-bench.txt"
grep -E '^gpu|time:|thrpt:|skipped|panicked' "$out/gpu-bench.txt" | head -n 60 >> "$out/summary.txt"

log "PyTorch on the same GPU"
timeout "$(budget 120)" python3 gpu_torch.py > "$out/torch.jsonl" 2> "$out/torch.err"

log "report"
bin/xtask gpu-report --criterion "$out/criterion" --torch "$out/torch.jsonl" --out "$out" \
    >> "$out/summary.txt" 2>&1

for device in cuda cpu; do
    log "quickstart, one epoch, --device $device"
    timeout "$(budget 60)" bin/quickstart --epochs 1 --device "$device" > "$out/quickstart-$device.txt" 2>&1
    echo "exit $?" >> "$out/quickstart-$device.txt"
    tail -n 2 "$out/quickstart-$device.txt" | tee -a "$out/summary.txt"
done

log "PyTorch with TF32, for reference"
timeout "$(budget 60)" python3 gpu_torch.py --tf32 --rounds 3 > "$out/torch-tf32.jsonl" 2>> "$out/torch.err"
log "kernel times of two steady training steps (Nsight Compute)"
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -n 1)
if [ -z "$ncu" ]; then
    echo "skipped: no ncu on this machine" | tee -a "$out/summary.txt"
else
    for b in 64 1024; do
        # Two steps' launches in a row hold each kernel of the step twice, wherever
        # they start in the steady state.
        n=$(sed -n "s/^gpu: \([0-9]*\) kernel launches a training step at batch $b\$/\1/p" \
            "$out/gpu-bench.txt")
        if [ -z "$n" ]; then
            echo "skipped: the benchmark did not say how many launches a step makes" \
                | tee -a "$out/summary.txt"
            continue
        fi
        timeout "$(budget 60)" "$ncu" --clock-control none --metrics gpu__time_duration.sum \
            --csv --page raw --launch-skip 300 --launch-count $(( 2 * n )) bin/gpu-bench \
            --bench --warm-up-time 1 --measurement-time 1 "gpu_seed_cnn_batch$b/train_step" \
            > "$out/ncu-batch$b.csv" 2> "$out/ncu-batch$b.err"
        python3 kernel_times.py "$out/ncu-batch$b.csv" --steps 2 > "$out/kernels-batch$b.txt" 2>&1
        echo "batch $b: $(tail -n 1 "$out/kernels-batch$b.txt")" | tee -a "$out/summary.txt"
    done
fi
log "done, $(( deadline - $(date +%s) )) s to spare"
cat "$out/summary.txt"
