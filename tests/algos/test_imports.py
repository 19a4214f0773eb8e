"""The math layer stays below the orchestration layers: importing it loads neither Ray, DeepSpeed nor vLLM."""

import subprocess
import sys


def test_algos_imports_no_orchestration_library():
    code = "import sys, etr_dist.algos; print([m for m in ('ray', 'deepspeed', 'vllm') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
