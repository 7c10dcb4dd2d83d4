#!/usr/bin/env bash
# The measurements bench/README.md keeps a row of for every CPU model (the matrix products, the
# recurrent models in fp32 and bf16-mixed against PyTorch, word2vec against gensim, the attention
# pair against torch.bmm, the 16-bit embedding passes), in one run, for a session on a CPU the
# tables do not have yet (an AMD EPYC Zen 4, say). Run it on a quiet machine, with the bench extra
# and the accel extra installed:
#     pip install -e ".[test,bench,accel]" && bash bench/cpu_session.sh
# About 11 minutes on a 2-core Xeon; each part is time-boxed (CPU_SESSION_PART_LIMIT seconds, default
# 1500) and writes its table as soon as it ends, so a run stopped early still leaves the rest.
#
# Results: bench/results/<date>-<cpu>/ (or $OUT/...): setup.txt (the CPU's instruction sets as
# the kernels see them, versions, the matrix libraries' code paths and the fresh gemm calibration),
# then one markdown table per part. Quote them in bench/README.md under a row for the CPU.
#
# CPU_SESSION_PARTS picks parts by name (default: all of setup gemm rnnlm better word2vec attention
# embedding); CPU_SESSION_THREADS the thread counts of the gemm and recurrent parts (default "1 2").
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
limit="${CPU_SESSION_PART_LIMIT:-1500}"
parts="${CPU_SESSION_PARTS:-setup gemm rnnlm better word2vec attention embedding}"
threads="${CPU_SESSION_THREADS:-1 2}"
data="${FASTNLP_DATA:-../shared/data}"
cpu=$(python -c "from fastnlp.kernels import cpu; print(cpu.model_name())" | tr '[:upper:] ' '[:lower:]-' \
    | tr -cd 'a-z0-9._-' | cut -c1-60)
out="${OUT:-bench/results}/$(date +%Y-%m-%d)-${cpu:-unknown-cpu}"
mkdir -p "$out"
echo "results: $out"

wanted() { case " $parts " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# part NAME COMMAND...: runs the command within the limit, its output into NAME.md, errors into NAME.stderr.txt
part() {
    local name=$1; shift
    local start=$SECONDS
    echo "== $name: $* (load $(cut -d' ' -f1 /proc/loadavg 2>/dev/null))"
    timeout "$limit" "$@" > "$out/$name.md" 2> "$out/$name.stderr.txt"
    local status=$?
    echo "   exit $status after $((SECONDS - start)) s (load $(cut -d' ' -f1 /proc/loadavg 2>/dev/null))"
    [ -s "$out/$name.stderr.txt" ] || rm -f "$out/$name.stderr.txt"
    return 0
}

pools() {  # pools N: the variables that set every library's pool to N threads, for env
    echo "OMP_NUM_THREADS=$1 MKL_NUM_THREADS=$1 OPENBLAS_NUM_THREADS=$1 NUMBA_NUM_THREADS=$1"
}

if wanted setup; then
    {
        date
        grep -m1 "model name" /proc/cpuinfo
        python -c "from fastnlp.kernels import cpu; print('matrix features:', ' '.join(cpu.matrix_features()))"
        python -c "import fastnlp, numpy, numba, sys; print('python', sys.version.split()[0], '| numpy', numpy.__version__,
'| numba', numba.__version__, '| fastnlp', fastnlp.__version__)"
        python -c "import torch; print('torch', torch.__version__)" 2>/dev/null || echo "torch: not installed"
        python -c "import gensim; print('gensim', gensim.__version__)" 2>/dev/null || echo "gensim: not installed"
        python -c "
from fastnlp.kernels import dispatch
from fastnlp.kernels.gemm import _libraries
for name in _libraries.NAMES:
    reason = dispatch.backend_reason(name)
    print(name, 'unavailable: ' + reason if reason else _libraries.version(name) + '; ' + _libraries.code_path(name)
          + '; bf16: ' + (_libraries.bf16_support(name) or 'native'))"
        for n in $threads; do
            echo "-- fastnlp backends --calibrate at $n thread(s)"
            env $(pools "$n") python -m fastnlp backends --calibrate 2>&1 | sed -n '/^matrix products/,$p'
        done
    } > "$out/setup.txt" 2>&1
    echo "== setup: $out/setup.txt"
fi
if wanted gemm; then
    for n in $threads; do
        part "gemm-${n}thread" env $(pools "$n") python bench/compare_gemm.py --threads "$n"
    done
fi
if wanted rnnlm; then
    for n in $threads; do
        part "rnnlm-${n}thread" python bench/compare_rnnlm.py --model rnnlm --epochs 0 --timing-iters 200 --turn 20 \
            --contenders cython,torch --threads "$n" --data-dir "$data"
    done
fi
if wanted better; then
    for n in $threads; do
        part "better-${n}thread" python bench/compare_rnnlm.py --model better --epochs 0 --timing-iters 40 --turn 5 \
            --contenders cython,torch --precision fp32,bf16-mixed --threads "$n" --data-dir "$data"
    done
fi
if wanted word2vec; then
    part word2vec python bench/compare_word2vec.py --epochs 5 --seeds 1,2,3 --workers 1,2 --sg 1,0 --data-dir "$data"
fi
if wanted attention; then
    part attention env $(pools 1) python -m pytest -q -p no:cacheprovider bench/test_bench_attention.py \
        -k "(pair_fused or torch or floor) and 1]" --benchmark-columns=min,median,rounds
fi
if wanted embedding; then
    part embedding env $(pools 1) python bench/compare_scatter_add.py --dtypes --rounds 80
fi
echo "done: $out"
