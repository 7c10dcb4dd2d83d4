#!/usr/bin/env bash
# One prepared device run (for a session lent a GPU through the device tool): build the package
# with the machine's own Python (which has CuPy, numba, Cython, hypothesis, pytest-benchmark), run
# the whole test suite including the GPU tests, then the GPU benchmarks; everything lands in $OUT.
# Copy $OUT's files to bench/results/ and commit them with the device name.
set -uo pipefail
out="${OUT:-bench/results}"
mkdir -p "$out"
{ nvidia-smi; python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"; } \
    > "$out/gpu-device.txt" 2>&1
python3 -m pip install -q --no-build-isolation --no-deps -e . > "$out/gpu-build.txt" 2>&1
# Every op with a CuPy implementation against the NumPy reference (generated from the registry),
# then the whole suite including the GPU tests.
python3 -m pytest -q -rs -p no:cacheprovider tests/test_kernels_registry.py -k cupy > "$out/gpu-ops.txt" 2>&1
echo "pytest exit $?" >> "$out/gpu-ops.txt"
python3 -m pytest -q -rs -p no:cacheprovider tests > "$out/gpu-tests.txt" 2>&1
echo "pytest exit $?" >> "$out/gpu-tests.txt"
python3 -c "from fastnlp.kernels import registry; print(registry.matrix())" > "$out/gpu-matrix.txt" 2>&1
python3 bench/compare_gpu.py --out "$out/gpu-bench.md" > "$out/gpu-bench.log" 2>&1
echo "compare_gpu exit $?" >> "$out/gpu-bench.log"
# Every op's CuPy implementation at its working size (OpSpec.benchmark_args), device time.
python3 -m pytest -q -p no:cacheprovider bench/test_bench_ops.py -k cupy --benchmark-json "$out/gpu-ops-bench.json" \
    > "$out/gpu-ops-bench.txt" 2>&1
echo "pytest exit $?" >> "$out/gpu-ops-bench.txt"
tail -3 "$out/gpu-ops.txt"; tail -3 "$out/gpu-tests.txt"; tail -3 "$out/gpu-ops-bench.txt"; cat "$out/gpu-matrix.txt"
cat "$out/gpu-bench.md" 2>/dev/null || tail -20 "$out/gpu-bench.log"
