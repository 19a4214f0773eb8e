"""model.dtype=auto: the bf16 decision from cpuinfo text, and a bf16-autocast step on float32 weights."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from etr_dist import precision
from etr_dist.algos import logprobs_from_logits

AVX2_ONLY = (
    "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx avx2 fma\n"
)
AVX512_BF16 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"


@pytest.mark.parametrize(
    ("cpuinfo", "flag"),
    [
        (AVX2_ONLY, None),
        (AVX512_BF16, None),  # bf16 dot products but no matrix unit: slower than float32 (measured)
        (SAPPHIRE_RAPIDS, "amx_bf16"),
        ("", None),
        # only the flags lines count: a model name that mentions bf16 is no instruction
        ("model name\t: amx_bf16 avx512_bf16 box\nflags\t\t: avx2\n", None),
        # vmx flags name features of their own; avx512_bf16 must appear as a whole flag
        ("flags\t\t: avx512_bf16x avx2\n", None),
    ],
)
def test_cpu_bf16_flag_from_cpuinfo_text(cpuinfo: str, flag: str | None) -> None:
    assert precision.cpu_bf16_flag(cpuinfo) == flag


@pytest.fixture
def fake_cpuinfo(tmp_path, monkeypatch):
    """Point the detection at a cpuinfo file written by the test; the per-process cache is cleared around it."""

    def write(text: str) -> None:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(precision, "CPUINFO", path)
        precision.detect_compute_dtype.cache_clear()

    yield write
    precision.detect_compute_dtype.cache_clear()


@pytest.mark.parametrize(
    ("cpuinfo", "dtype"),
    [(AVX2_ONLY, torch.float32), (AVX512_BF16, torch.float32), (SAPPHIRE_RAPIDS, torch.bfloat16)],
)
def test_auto_follows_the_cpu_and_says_so(fake_cpuinfo, capsys, cpuinfo: str, dtype: torch.dtype) -> None:
    fake_cpuinfo(cpuinfo)
    assert precision.compute_dtype("auto", torch.device("cpu")) == dtype
    assert precision.compute_dtype("auto", "cpu") == dtype  # decided once: a single log line
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "model.dtype=auto" in line
    assert ("found amx_bf16" in line) == (dtype == torch.bfloat16)


@pytest.mark.parametrize("cpuinfo", [AVX2_ONLY, AVX512_BF16])
def test_explicit_dtypes_override_the_detection(fake_cpuinfo, cpuinfo: str) -> None:
    fake_cpuinfo(cpuinfo)
    assert precision.compute_dtype("float32", "cpu") == torch.float32
    assert precision.compute_dtype("bfloat16", "cpu") == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")
    with precision.autocast("float32", "cpu"), precision.autocast("bfloat16", "cpu"):
        assert not torch.is_autocast_enabled("cpu")  # explicit dtypes are the weights' own
    with pytest.raises(ValueError, match="'fp8'"):
        precision.compute_dtype("fp8", "cpu")


def test_bf16_autocast_step_on_float32_weights(fake_cpuinfo, tiny_model_path: str) -> None:
    """The learner's forward under auto on a bf16 CPU: bf16 logits, a finite loss, float32 weights and grads."""
    fake_cpuinfo(SAPPHIRE_RAPIDS)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    ids = torch.randint(3, model.config.vocab_size, (4, 12))
    grads = {}
    for dtype in ("auto", "float32"):
        model.zero_grad()
        with precision.autocast(dtype, "cpu"):
            logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
        assert logits.dtype == (torch.bfloat16 if dtype == "auto" else torch.float32)
        loss = -logprobs_from_logits(logits, ids[:, 1:], 1024, 1.0, 1.0).mean()
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
        grads[dtype] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.isfinite(grads["auto"]).all()
    assert torch.cosine_similarity(grads["auto"], grads["float32"], dim=0) > 0.99
