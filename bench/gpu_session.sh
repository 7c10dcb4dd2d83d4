#!/usr/bin/env bash
# One prepared device run (issue 18) for a session lent a GPU through the device tool: everything
# within GPU_SESSION_BUDGET seconds (default 560, inside the tool's 600 a command), each part
# time-boxed by bench/gpu_train_check.py so that a slow one cannot eat the rest, and every result
# written as soon as it is measured, so a run stopped at its limit still brings back the rest.
#
# Here, once (the data sits beside the checkout, which does not travel; build/ is ignored by git):
#     mkdir -p build/gpu-data && cp -r ../shared/data/ptb ../shared/data/seq build/gpu-data/
# Then one call of the device tool:
#     run(command="bash bench/gpu_session.sh", carry=["build/gpu-data"], timeout_s=600)
#
# The machine cannot reach a package registry: it runs its own python3, which has CuPy (CUDA 13),
# PyTorch with CUDA, numba, Cython, pytest and hypothesis. The Cython extensions are built in place
# (at most 100 s; without them the CPU side runs on Numba and NumPy). Parts, in order: every CuPy
# op against the NumPy reference (the generated registry tests), every model trained the same
# steps on the GPU and the CPU with the losses compared, tokens/s against PyTorch's cuDNN LSTM,
# Word2Vec(sg=1, device="cuda") words/s on PTB, the tests marked gpu, bench/compare_gpu.py, and
# the generated benchmark of every op on cupy (bench/test_bench_ops.py -k cupy).
#
# GPU_SESSION_BUILD=0 skips the build; GPU_SESSION_ARGS adds arguments to gpu_train_check.py
# (GPU_SESSION_ARGS=--dry-run GPU_SESSION_BUILD=0 tries the whole script where no GPU is).
#
# Results: $OUT/<date>-<device>/ (bench/results/<date>-<device>/ without $OUT), eight files, as
# many as the tool brings back: setup.txt (GPU, driver, CUDA, CuPy, torch, the build), check.log,
# check.json, check.md (the tables), ops.txt, gpu-tests.txt, ops-speed.txt, gpu-ops-bench.json.
# Copy the folder to bench/results/ and quote check.md in bench/README.md with the device named.
set -uo pipefail
cd "$(dirname "$0")/.."
budget="${GPU_SESSION_BUDGET:-560}"
device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | tr '[:upper:] ' '[:lower:]-' \
    | tr -cd 'a-z0-9._-')
out="${OUT:-bench/results}/$(date +%Y-%m-%d)-${device:-no-gpu}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# The CPU side's backends in their static order: calibrating each op would time them all first.
export FASTNLP_CALIBRATION=off
data=""
for candidate in "${FASTNLP_DATA:-}" build/gpu-data ../shared/data; do
    if [ -n "$candidate" ] && [ -d "$candidate/ptb" ]; then data="$candidate"; break; fi
done
{
    date -Is
    nvidia-smi
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import sys, numpy, cupy; r = cupy.cuda.runtime; print(sys.version.split()[0], 'numpy', \
numpy.__version__, 'cupy', cupy.__version__, 'CUDA runtime', r.runtimeGetVersion(), 'driver', r.driverGetVersion())"
    python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN', \
torch.backends.cudnn.version(), 'GPU seen', torch.cuda.is_available())"
    echo "data: ${data:-none found: synthetic data}"
    echo "== build of the Cython extensions (at most 100 s)"
} > "$out/setup.txt" 2>&1
if [ "${GPU_SESSION_BUILD:-1}" != 0 ]; then
    timeout -k 5 100 python3 setup.py build_ext --inplace -j "$(nproc)" >> "$out/setup.txt" 2>&1
    status=$?
    [ "$status" -eq 0 ] || echo "build stopped or failed (exit $status): the CPU side runs on Numba and NumPy" \
        >> "$out/setup.txt"
fi
left=$((budget - SECONDS))
# shellcheck disable=SC2086  # GPU_SESSION_ARGS is a list of arguments
timeout -k 5 "$((left - 5))" python3 bench/gpu_train_check.py --out "$out" --budget "$((left - 20))" \
    ${data:+--data-dir "$data"} ${GPU_SESSION_ARGS:-} > "$out/check.log" 2>&1
echo "gpu_train_check exit $? after $SECONDS s" >> "$out/check.log"
tail -n 3 "$out/setup.txt"
tail -n 1 "$out/check.log"
cat "$out/check.md" 2>/dev/null
