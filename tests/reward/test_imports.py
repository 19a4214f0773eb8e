"""The grading core sits below the orchestration layers and keeps sympy off the import path until needed."""

import subprocess
import sys

HEAVY = ("ray", "deepspeed", "vllm", "torch", "sympy", "math_verify", "latex2sympy2_extended")


def test_reward_imports_neither_orchestration_nor_sympy():
    code = f"import sys, etr_dist.reward; print([m for m in {HEAVY!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
