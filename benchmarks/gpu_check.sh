#!/usr/bin/env bash
# The GPU figures of benchmarks/README.md in one short run (a few minutes on one GPU):
#   1. BI-R on the reference protocol (split Fashion-MNIST class-IL, 5 x 2000 iterations,
#      batch 128 + 128 replayed, MLP 2x400, z 100): one seed alone, and 10 seeds stacked;
#   2. BI-R on rram-demo (small networks, where per-step overhead dominates): one seed alone,
#      and 5 seeds stacked (target: at most 2x one seed's wall time);
#   3. the RRAM simulator's throughput on 1e6 devices (device-steps per second);
#   4. BI-R on both protocols again with the compiled step (train.compile, CUDA graphs through
#      torch.compile's reduce-overhead mode), the launch overhead the eager runs measure.
#      Never run on a GPU before: a failure there is reported and does not stop the script;
#   5. only with BF16=1: BI-R on the reference protocol with bfloat16 products
#      (train.precision, autocast), eager and compiled, one seed and 5 stacked. Off by default
#      to keep the run short: the protocol's arithmetic is under a second of GPU time, so
#      bfloat16 should change little there. Tolerant like step 4.
# Needs a CUDA build of torch and the Fashion-MNIST IDX files (FASHION_DIR, default the
# Debian package's folder). Writes JSON under benchmarks/results/ (or $OUT when set).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
fashion="${FASHION_DIR:-/usr/share/datasets/fashion-mnist}"
export PYTHONUNBUFFERED=1
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
python benchmarks/bench_seeds.py --preset split-fashion-class --methods bir \
    --seeds 1,2,3,4,5,6,7,8,9,10 --device cuda --data-dir "$fashion" \
    --out "$out/seeds_fashion_gpu.json"
python benchmarks/bench_seeds.py --preset rram-demo --methods bir --seeds 1,2,3,4,5 \
    --device cuda --out "$out/seeds_rram_demo_gpu.json"
python benchmarks/bench_rram.py --devices 1000000 --cycles 1 --device cuda --backends torch \
    --dtype float32 --out "$out/rram_gpu.json"
tolerant() {  # BI-R, 5 seeds, a new configuration: a failure is reported, the eager figures stand
    python benchmarks/bench_seeds.py --methods bir --seeds 1,2,3,4,5 --device cuda "$@" \
        || echo "this run failed (above): $*"
}
tolerant --compile reduce-overhead --preset rram-demo \
    --out "$out/seeds_rram_demo_gpu_compiled.json"
tolerant --compile reduce-overhead --preset split-fashion-class --data-dir "$fashion" \
    --out "$out/seeds_fashion_gpu_compiled.json"
if [[ "${BF16:-0}" == 1 ]]; then
    bf16=(--preset split-fashion-class --data-dir "$fashion" --precision bfloat16)
    tolerant "${bf16[@]}" --out "$out/seeds_fashion_gpu_bf16.json"
    tolerant "${bf16[@]}" --compile reduce-overhead \
        --out "$out/seeds_fashion_gpu_bf16_compiled.json"
fi
