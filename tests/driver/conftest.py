import os
from pathlib import Path

import pytest

SUPPORT = Path(__file__).parent / "e2e_support"


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray cluster owned by the test module; the reward module rides along on PYTHONPATH."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        num_cpus=8,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(SUPPORT), "OMP_NUM_THREADS": "1"}},
    )
    yield ray
    ray.shutdown()
