#!/usr/bin/env bash
# One prepared device call (docs/incoming-gpu.md): the CUDA tests, benchmarks/gpu_bench.py (with the
# official model when a checkout is carried), and `spikebert run --task sst2 --preset gpu`, all
# within about 9 minutes, everything written under $OUT. Prepare here, once:
#   bash ../shared/gpu/prepare.sh                       # .device-carry/ (data, corpora, teacher, wheels)
#   # optional, the official model: a checkout and SpikingJelly's wheel
#   cp -r /path/to/SpikeBERT .device-carry/official
#   pip download --no-deps spikingjelly==0.0.0.0.14 -d .device-carry/extra-wheels
# then, with the device tool: command `bash benchmarks/gpu_session.sh`, carry [".device-carry"],
# timeout_s 600. Each part has its own time limit; a part cut short keeps what it wrote.
set -u
: "${OUT:?OUT must be set (the device tool sets it)}"
. .device-carry/on-device.sh
start=$SECONDS
left() { echo $(( 540 - (SECONDS - start) )); }   # seconds left of the 9 minutes
limit() { local want=$1 l; l=$(left); [ "$l" -lt "$want" ] && want=$l; [ "$want" -lt 10 ] && want=10; echo "$want"; }
{ nvidia-smi; python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; } > "$OUT/device.txt" 2>&1

official=()
if [ -d .device-carry/official ]; then
  ls .device-carry/extra-wheels/*.whl >/dev/null 2>&1 && python3 -m pip install -q --no-index --no-deps \
    --target /tmp/site .device-carry/extra-wheels/*.whl >> "$OUT/device.txt" 2>&1
  official=(--official .device-carry/official)
fi

# 1. the CUDA tests (about 1-2 minutes, compilation included)
timeout "$(limit 150)" python3 -m pytest -q -rs tests/test_cuda.py > "$OUT/test_cuda.log" 2>&1
echo "test_cuda rc=$? at $((SECONDS - start)) s" | tee -a "$OUT/session.log"

# 2. the benchmark: ours (compiled and eager neurons) and the official model, fp32 and bf16, training
#    and inference, our paper-shape step under the profiler (ops table, trace), then the stage steps
#    against the bare step (its JSON is rewritten after every case)
timeout "$(limit 200)" python3 benchmarks/gpu_bench.py "${official[@]}" --out "$OUT/gpu_bench.json" --profile "$OUT/profile" \
  > "$OUT/gpu_bench.log" 2>&1
echo "gpu_bench rc=$? at $((SECONDS - start)) s" | tee -a "$OUT/session.log"

# 2b. every block under torch.compile (SPIKEBERT_COMPILE=blocks, opt-in), then the same replayed as CUDA
#     graphs (graphs: reduce-overhead mode, real batches padded to a multiple of 16), at the paper's shape
#     and on real SST-2 batches, bf16: whether each pays decides what CUDA's default becomes (90 s at most)
timeout "$(limit 90)" python3 benchmarks/gpu_bench.py --shapes paper,sst2 --precisions bf16 --backends blocks,graphs \
  --no-stages --out "$OUT/gpu_bench_blocks.json" > "$OUT/gpu_bench_blocks.log" 2>&1
echo "gpu_bench blocks rc=$? at $((SECONDS - start)) s" | tee -a "$OUT/session.log"

# 3. the whole method with the gpu preset, in the time left (about 5 minutes): time per stage and dev
#    accuracy in report.json; cut short, its logs still show how far each stage got
timeout "$(limit 330)" python3 -m spikebert.cli run --task sst2 --preset gpu --workdir /tmp/runs --no-html \
  > "$OUT/run-gpu.log" 2>&1
echo "run --preset gpu rc=$? at $((SECONDS - start)) s" | tee -a "$OUT/session.log"
cp /tmp/runs/sst2/report.json "$OUT/report-gpu.json" 2>/dev/null
for s in /tmp/runs/stage1-*-gpu /tmp/runs/sst2/snn /tmp/runs/sst2/teacher; do
  [ -f "$s/metrics.json" ] && cp "$s/metrics.json" "$OUT/metrics-$(basename "$s").json"
  [ -f "$s/log.jsonl" ] && cp "$s/log.jsonl" "$OUT/log-$(basename "$s").jsonl"
done
