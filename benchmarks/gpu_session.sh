#!/usr/bin/env bash
# One pass (<= 5 minutes) on a lent GPU machine: every GPU figure of issue 11, printed and saved.
#
#   OUT=/tmp/gpu MFREC_DATA=/path/to/data bash benchmarks/gpu_session.sh
#
# Stages, each under its own timeout so that a slow one cannot cost the rest (defaults sum to
# 290 s at most): install the checkout into the machine's python (pip -e, no deps; else a
# package-dir shim), the GPU tests (pytest -m gpu, and the sm_90 compile tests), every
# throughput row (benchmarks/gpu_figures.py: numba.cuda, Triton and torch minibatch on the
# ML-10M and ML-25M grids, k 16..256, biased/float64, and the ML-100k 20-epoch numba.cuda fit),
# then time to accuracy on ML-100k and on the 25M synthetic problem
# (benchmarks/time_to_accuracy.py --gpu-only; the serial reference still runs, on the CPU).
# Everything lands in $OUT: env.txt, gpu-tests.log, gpu_figures.{log,json}, tta-*.{md,json,png}.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/out/gpu}
PY=${PY:-python3}
mkdir -p "$OUT" benchmarks/out
export PYTHONUNBUFFERED=1 CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export TRITON_DEFAULT_FP_FUSION=${TRITON_DEFAULT_FP_FUSION:-1}
SECONDS=0
stage() { echo "=== $1 (t=${SECONDS}s)"; }

# The GPU image's numba-cuda registers np.row_stack at import, which NumPy 2.5 removed: alias it
# (an alias of np.vstack, as NumPy had it) before anything imports numba-cuda.
SHIM=$(mktemp -d)
if ! "$PY" -c 'import numpy; numpy.row_stack' 2>/dev/null; then
    echo 'import numpy; numpy.row_stack = numpy.vstack' >"$SHIM/sitecustomize.py"
    echo "numpy.row_stack aliased to numpy.vstack for numba-cuda ($SHIM/sitecustomize.py)"
fi
export PYTHONPATH=$SHIM${PYTHONPATH:+:$PYTHONPATH}

stage "install"
# mfrec.reference lives in reference/ (setuptools package-dir), so PYTHONPATH=$PWD is not enough.
if timeout "${INSTALL_TIMEOUT:-30}" "$PY" -m pip install -q --no-deps --no-build-isolation -e . \
    >"$OUT/install.log" 2>&1 && "$PY" -c 'import mfrec.reference' 2>>"$OUT/install.log"; then
    echo "installed editable: $("$PY" -c 'import mfrec.reference as m; print(m.__file__)')"
else
    # Fallback: the same package layout from symlinks (mfrec/ copied, the mapped folders linked).
    echo "pip install -e failed (see $OUT/install.log): package-dir shim under $SHIM"
    mkdir -p "$SHIM/mfrec"
    cp -r mfrec/. "$SHIM/mfrec/"
    ln -s "$PWD/reference" "$SHIM/mfrec/reference"
    ln -s "$PWD/torch_impl" "$SHIM/mfrec/torch_impl"
    ln -s "$PWD/data" "$SHIM/mfrec/data"
fi

stage "environment"
{
    date -u
    git rev-parse HEAD 2>/dev/null || echo "commit: (no .git; see the session's notes)"
    nvidia-smi
    "$PY" -c 'import numba, numpy, torch
print("torch", torch.__version__, "numba", numba.__version__, "numpy", numpy.__version__)
try:
    import triton; print("triton", triton.__version__)
except ImportError: print("triton: not installed")
try:
    import numba_cuda; print("numba-cuda", numba_cuda.__version__)
except ImportError: print("numba-cuda: not installed")
from mfrec import devices; print("devices:", devices.describe(), devices.available())'
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

stage "GPU tests"
{
    timeout "${TEST_TIMEOUT:-55}" "$PY" -m pytest tests -m gpu -p no:randomly -p no:cacheprovider \
        -q -rs 2>&1 | tail -n 40
    echo "gpu tests: exit ${PIPESTATUS[0]}"
    timeout "${COMPILE_TEST_TIMEOUT:-15}" "$PY" -m pytest tests/test_gpu_compile.py -p no:randomly \
        -p no:cacheprovider -q -rs 2>&1 | tail -n 10
    echo "sm_90 compile tests: exit ${PIPESTATUS[0]}"
} | tee "$OUT/gpu-tests.log"

stage "throughput rows (gpu_figures.py)"
timeout "${FIGURES_TIMEOUT:-100}" "$PY" benchmarks/gpu_figures.py --out "$OUT/gpu_figures.json" \
    2>&1 | tee "$OUT/gpu_figures.log"
echo "gpu_figures: exit ${PIPESTATUS[0]}"

stage "time to accuracy, ML-100k"
timeout "${TTA_ML100K_TIMEOUT:-20}" "$PY" benchmarks/time_to_accuracy.py --problem ml100k \
    --gpu-only 2>&1 | tail -n 20
stage "time to accuracy, 25M synthetic"
timeout "${TTA_25M_TIMEOUT:-70}" "$PY" benchmarks/time_to_accuracy.py --problem synthetic \
    --n 25000000 --gpu-only 2>&1 | tail -n 20
cp benchmarks/out/tta-* "$OUT/" 2>/dev/null

stage "done"
ls -l "$OUT"
