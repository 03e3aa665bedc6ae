"""The one place that says which devices exist: Numba's CUDA target and torch's CUDA.

Code, tests and benchmarks ask here (never ``cuda.is_available()`` directly), so "is there a GPU"
has one answer per process. Each probe runs on first call, not at import, and a broken driver
reads as "no device".
"""

from __future__ import annotations

import functools


@functools.cache
def numba_cuda() -> bool:
    """Whether Numba sees a CUDA device (or runs the CUDA simulator, NUMBA_ENABLE_CUDASIM=1)."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # no driver, a broken install, or no numba-cuda: no device
        return False


@functools.cache
def torch_cuda() -> bool:
    """Whether torch sees a CUDA device."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def auto(target: str) -> str:
    """``"cuda"`` when ``target`` (``"numba"`` or ``"torch"``) sees a CUDA device, else ``"cpu"``:
    what ``device="auto"`` means everywhere."""
    present = numba_cuda() if target == "numba" else torch_cuda()
    return "cuda" if present else "cpu"


def available() -> list[str]:
    """The device labels present in this process: always ``"cpu"``, then any CUDA ones."""
    return (
        ["cpu"]
        + (["numba-cuda"] if numba_cuda() else [])
        + (["torch-cuda"] if torch_cuda() else [])
    )


def describe() -> str:
    """One line naming the devices, for reports and benchmark headers."""
    names = ["cpu"]
    if torch_cuda():
        import torch

        names.append(f"cuda:0 ({torch.cuda.get_device_name(0)})")
    elif numba_cuda():
        names.append("cuda (numba)")
    return ", ".join(names)
