"""bf16 autocast only where the CPU multiplies bfloat16 natively; names checked early."""

from __future__ import annotations

import pytest
import torch

from transferkit.errors import BadInputError
from transferkit.finetune import precision


def test_auto_follows_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto") == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto") == "fp32"
    assert precision.resolve_precision("bf16") == "bf16"  # asked for: used even if emulated


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(BadInputError, match="auto, fp32, bf16"):
        precision.resolve_precision("fp16")


def test_cpu_flags_are_read_from_proc_cpuinfo(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor : 0\nflags : fpu avx2 avx512f amx_bf16 amx_tile\n")
    real_path = precision.Path
    monkeypatch.setattr(precision, "Path", lambda p: fake if p == "/proc/cpuinfo" else real_path(p))
    precision.cpu_has_native_bf16.cache_clear()
    try:
        assert precision.cpu_has_native_bf16()
        fake.write_text("processor : 0\nflags : fpu avx2 avx512f\n")
        precision.cpu_has_native_bf16.cache_clear()
        assert not precision.cpu_has_native_bf16()
    finally:
        precision.cpu_has_native_bf16.cache_clear()


def test_bf16_autocast_runs_matmuls_in_bfloat16_and_fp32_leaves_them_alone():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with precision.cpu_autocast("bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with precision.cpu_autocast("fp32"):
        assert (a @ b).dtype == torch.float32
