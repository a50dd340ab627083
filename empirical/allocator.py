"""glibc's allocator during training: the memory a step frees is kept for the next step.

With glibc's defaults, a tensor above the mmap threshold (128 KiB, raised dynamically up to 32 MiB) gets
pages of its own that go back to the kernel when it is freed, and the heap is trimmed whenever 128 KiB are
free at its top; the next step then faults the same amount in again, page by page. TinyVGG's feature maps
(3.2 MB for one run of [128, 8, 28, 28]) are such tensors: a 15-run step on 1×28×28 took 376 ms with the
defaults against 267 ms with freed memory kept (the MLP's, at 1 MB and below, are reused either way).

``kept()`` makes every allocation come from the heap (``M_MMAP_MAX`` = 0) and never trims it
(``M_TRIM_THRESHOLD`` = 2³¹ − 1); ``returned()`` is glibc's static defaults (mmap above 128 KiB, trim above
128 KiB), for the probes and evaluations between steps, whose larger tensors would otherwise stay in the heap
for good. Both restore what was set before on exit. Elsewhere than Linux with glibc, and in a process started
with glibc's own ``MALLOC_*_`` tuning variables (the user's choice), both do nothing. Results do not depend on
either: they decide where memory lives, not what is computed.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
ENV = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
KEEP = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2 ** 31 - 1}
RETURN = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 128 * 1024, M_TRIM_THRESHOLD: 128 * 1024}

_state = {"mode": None}


def _mallopt():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or any(os.environ.get(k) for k in ENV):
        return None
    try:
        fn = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return fn


_MALLOPT = _mallopt()


def available() -> bool:
    """Whether this process's allocator is glibc's, whose settings ``kept`` and ``returned`` change."""
    return _MALLOPT is not None


def mode() -> str | None:
    """'kept', 'returned', or None outside both (the process's own settings)."""
    return _state["mode"]


def _apply(settings: dict[int, int]) -> None:
    for param, value in settings.items():
        _MALLOPT(param, value)


@contextlib.contextmanager
def _policy(name: str, settings: dict[int, int]):
    before = _state["mode"]
    if _MALLOPT is None or before == name:
        yield
        return
    _apply(settings)
    _state["mode"] = name
    try:
        yield
    finally:
        _state["mode"] = before
        # outside both, the process had glibc's settings: the static defaults are the closest to put back
        _apply(KEEP if before == "kept" else RETURN)


def kept():
    """Freed memory stays with the process for the next allocation (the training steps)."""
    return _policy("kept", KEEP)


def returned():
    """Large freed blocks go back to the kernel (glibc's static defaults: probes, evaluations)."""
    return _policy("returned", RETURN)
