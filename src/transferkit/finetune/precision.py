"""Mixed precision for training on a CPU: bfloat16 matmuls where the processor does them natively.

Processors with AMX or AVX512-BF16 (Intel Sapphire Rapids and later, AMD Zen 4 and later)
multiply bfloat16 matrices in hardware; elsewhere bfloat16 is emulated and slower than float32,
so ``auto`` uses it only when the CPU flags say so. Weights, optimizer state and the loss stay in
float32 (``torch.autocast`` casts only the matmul inputs), the usual mixed-precision recipe.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from transferkit.errors import BadInputError

PRECISIONS = ("auto", "fp32", "bf16")
_NATIVE_BF16_FLAGS = {"amx_bf16", "avx512_bf16"}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists AMX-BF16 or AVX512-BF16 (False where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(_NATIVE_BF16_FLAGS & set(line.split(":", 1)[-1].split()))
    return False


def resolve_precision(precision: str) -> str:
    """``fp32`` or ``bf16`` for a CPU run (``auto``: bf16 only with native support)."""
    if precision not in PRECISIONS:
        raise BadInputError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return precision


def cpu_autocast(precision: str):
    """The autocast context for a resolved ``precision`` on the CPU."""
    import torch

    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
