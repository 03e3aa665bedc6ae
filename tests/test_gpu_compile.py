"""The GPU kernels compile for an H100/H200 (sm_90) on a machine without a GPU, and their
factor reads and writes are the L2 (``.cg``) kind, never plain loads that may hit a stale L1."""

from __future__ import annotations

import re
import types

import pytest

SM90 = (9, 0)


def global_ops(ptx: str) -> list[str]:
    """The PTX global-memory loads and stores (not atomics), one string each."""
    return re.findall(r"\b(?:ld|st)\.global[.\w]*", ptx)


@pytest.fixture
def numba_ptx(monkeypatch):
    """``compile_ptx(kernel, dtype)`` for sm_90 by numba-cuda; skipped when it cannot run here."""
    cuda = pytest.importorskip("numba.cuda")
    if not hasattr(cuda, "ldcg"):
        pytest.skip("this numba.cuda has no ldcg/stcg: pip install numba-cuda")
    import numba.cuda.dispatcher as dispatcher
    from numba import boolean, float64, int64
    from numba import types as nb

    # Device functions ask the current device for its compute capability; there is none here.
    device = types.SimpleNamespace(compute_capability=SM90)
    monkeypatch.setattr(dispatcher, "get_current_device", lambda: device)

    def compile_ptx(kernel, dtype):
        vec, mat = nb.Array(dtype, 1, "C"), nb.Array(dtype, 2, "C")
        ix = nb.Array(int64, 1, "C")
        sig = (ix, ix, vec, ix, int64, int64, mat, mat, vec, vec, dtype, dtype, dtype, boolean)
        sig += (nb.Array(float64, 1, "C"),)
        try:
            return cuda.compile_ptx(kernel.py_func, sig, cc=SM90)[0]
        except Exception as e:  # no NVVM/NVRTC libraries on this machine
            pytest.skip(f"numba-cuda cannot compile here: {type(e).__name__}: {str(e)[:200]}")

    return compile_ptx


@pytest.mark.parametrize("lanes", [1, 32])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_cuda_kernels_compile_for_sm90_with_l2_loads(numba_ptx, lanes, dtype):
    from numba import float32, float64

    from mfrec.reference.cuda import LANE_KERNELS

    ptx = numba_ptx(LANE_KERNELS[lanes], {"float32": float32, "float64": float64}[dtype])
    assert ".target sm_90" in ptx
    ops = global_ops(ptx)
    width = "b32" if dtype == "float32" else "b64"
    # P, Q, bu, bi: 4 stores, all .cg; their loads all .cg (the index arrays' may be plain).
    stores = [op for op in ops if op.startswith("st.")]
    assert stores and all(".cg" in op for op in stores), stores
    assert sum(op.startswith("ld.global.cg") for op in ops) >= 4, ops
    assert "atom.global" in ptx  # only Σ e², once per worker
    assert len(re.findall(r"atom\.global", ptx)) == 1
    assert any(width in op for op in stores)
    if lanes == 32:
        assert "shfl.sync.bfly" in ptx


@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
def test_triton_kernel_compiles_for_sm90_with_l2_loads(dtype):
    triton = pytest.importorskip("triton", reason="triton not installed")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from mfrec.torch_impl.triton_sgd import _sgd_tiles

    ptr = f"*{dtype}"
    sig = dict(users="*i64", items="*i64", ratings=ptr, order="*i64", P=ptr, Q=ptr, bu=ptr)
    sig.update(bi=ptr, sse="*fp64", hyper=ptr, n="i64", a="i64", b="i64", step="i64")
    sig.update(K="constexpr", BK="constexpr", BR="constexpr", BIASED="constexpr")
    src = ASTSource(
        fn=_sgd_tiles, signature=sig, constexprs={"K": 64, "BK": 64, "BR": 4, "BIASED": True}
    )
    try:
        ptx = triton.compile(src, target=GPUTarget("cuda", 90, 32)).asm["ptx"]
    except Exception as e:  # no ptxas or LLVM backend for CUDA in this install
        pytest.skip(f"triton cannot compile for sm_90 here: {type(e).__name__}: {str(e)[:200]}")
    ops = global_ops(ptx)
    stores = [op for op in ops if op.startswith("st.")]
    # Every store is .cg but the per-program Σ e² (one store of the float64 partial).
    assert len([op for op in stores if ".cg" not in op]) == 1, stores
    assert len([op for op in stores if ".cg" in op]) >= 4, stores
    assert sum(op.startswith("ld.global.cg") for op in ops) >= 4, ops
    assert "atom." not in ptx
