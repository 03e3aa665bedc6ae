#!/usr/bin/env bash
# One pass on a GPU machine: the GPU tests, then every speed row (GPU rows first).
#
# Runs with the machine's own python3 (torch with CUDA, numba with numba-cuda, pytest-benchmark),
# the project taken from this checkout by PYTHONPATH. The GPU rows run and are reported first,
# so they survive a time limit hit by the CPU rows; the final report (copied by report.py to
# benchmarks/results/<gpu>-*) has both. Logs and raw JSON also go to $OUT.
#   OUT=/tmp/gpu MFREC_DATA=/path/to/data bash benchmarks/gpu_session.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/out/gpu}
PY=${PY:-python3}
mkdir -p "$OUT" benchmarks/out
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
# The GPU image's numba-cuda registers np.row_stack at import, which NumPy 2.5 removed: alias it
# (an alias of np.vstack, as NumPy had it) before anything imports numba-cuda.
if ! "$PY" -c 'import numpy; numpy.row_stack' 2>/dev/null; then
    SHIM=$(mktemp -d)
    echo 'import numpy; numpy.row_stack = numpy.vstack' >"$SHIM/sitecustomize.py"
    export PYTHONPATH=$SHIM:$PYTHONPATH
    echo "numpy.row_stack aliased to numpy.vstack for numba-cuda ($SHIM/sitecustomize.py)"
fi

{
    date -u
    nvidia-smi
    "$PY" -c 'import numba, numpy, torch; from mfrec import devices
print("torch", torch.__version__, "numba", numba.__version__, "numpy", numpy.__version__)
print("devices:", devices.describe())
print("numba.cuda available:", devices.numba_cuda())'
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

set -o pipefail
timeout "${TEST_TIMEOUT:-130}" "$PY" -m pytest tests -m gpu -p no:randomly -p no:cacheprovider -q -rs 2>&1 |
    tee "$OUT/gpu-tests.log"
echo "gpu tests: exit $?" | tee -a "$OUT/gpu-tests.log"

bench() {  # bench NAME SELECTION TIMEOUT: one pytest-benchmark run to benchmarks/out/NAME.json
    timeout "$3" "$PY" -m pytest benchmarks --benchmark-enable --benchmark-only -p no:randomly \
        -p no:cacheprovider -k "$2" --benchmark-json="benchmarks/out/$1.json" 2>&1 |
        tee -a "$OUT/bench.log"
    echo "$1 rows: exit $?" | tee -a "$OUT/bench.log"
}
report() {  # the report from whichever of the runs wrote its JSON
    local found=()
    for f in benchmarks/out/gpu.json benchmarks/out/cpu.json; do [ -s "$f" ] && found+=("$f"); done
    [ ${#found[@]} -gt 0 ] && "$PY" benchmarks/report.py "${found[@]}"
}
rm -f benchmarks/out/gpu.json benchmarks/out/cpu.json
bench gpu "cuda" "${GPU_BENCH_TIMEOUT:-130}"
report >/dev/null && cp benchmarks/out/report.md "$OUT/"
bench cpu "${CPU_SELECT:-not cuda}" "${CPU_BENCH_TIMEOUT:-300}"
report | tail -n 60
cp benchmarks/out/gpu.json benchmarks/out/cpu.json benchmarks/out/report.md \
    benchmarks/out/results.json benchmarks/out/bench.png "$OUT/" 2>/dev/null
ls -l "$OUT"
