"""model.dtype=auto: bf16 compute where the hardware multiplies bf16 matrices natively, float32 elsewhere.

On a CPU without AMX, bf16 is slower than float32: emulated on AVX2 (~5x), and even with AVX512-BF16 alone a bf16
matmul measured half float32's speed here (docs/benchmarks.md). So `auto` takes bf16 on CPUs with AMX tiles only,
checks the flags once per process and says what it found. Under `auto` the learner keeps
float32 weights and optimizer state and runs forward/backward under torch.autocast; an engine generates in the
compute dtype. An explicit `float32` / `bfloat16` / `float16` is used as it is.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

# x86 /proc/cpuinfo flags of bf16 matrix units that beat float32 (avx512_bf16 alone does not: measured 0.5x)
CPU_BF16_FLAGS = ("amx_bf16",)
CPUINFO = Path("/proc/cpuinfo")
EXPLICIT = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_bf16_flag(cpuinfo: str) -> str | None:
    """The first of CPU_BF16_FLAGS in /proc/cpuinfo's `flags` lines, or None."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return next((flag for flag in CPU_BF16_FLAGS if flag in flags), None)


@functools.cache
def detect_compute_dtype(device_type: str) -> torch.dtype:
    """bf16 where `device_type` has native bf16 matmuls, else float32; prints the finding once per process."""
    if device_type == "cuda":
        found = "torch.cuda.is_bf16_supported()" if torch.cuda.is_bf16_supported() else None
    else:
        found = cpu_bf16_flag(CPUINFO.read_text() if CPUINFO.is_file() else "")
    dtype = torch.bfloat16 if found else torch.float32
    reason = (
        f"found {found}" if found else f"no native bf16 matmul on {device_type} (checked {CPU_BF16_FLAGS})"
    )
    print(
        f"etr_dist precision: model.dtype=auto -> {str(dtype).removeprefix('torch.')} ({reason})", flush=True
    )
    return dtype


def compute_dtype(model_dtype: str, device: torch.device | str) -> torch.dtype:
    """The dtype the matmuls run in: an explicit model.dtype as named, `auto` from the hardware."""
    if model_dtype == "auto":
        return detect_compute_dtype(torch.device(device).type)
    if model_dtype not in EXPLICIT:
        raise ValueError(f"model.dtype must be auto or one of {list(EXPLICIT)}, got {model_dtype!r}")
    return EXPLICIT[model_dtype]


def autocast(model_dtype: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """Under `auto`, torch.autocast to the detected dtype around float32 weights; otherwise no change."""
    if model_dtype != "auto" or compute_dtype(model_dtype, device) == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=compute_dtype(model_dtype, device))
