import sys
from pathlib import Path

import pytest

from . import reward_fns


@pytest.fixture(scope="session")
def reward_fns_path():
    """`<module>:` prefix for reward_fns that worker processes can import too.

    pytest imports test modules without putting their root on sys.path, but worker processes import a
    custom reward function by name from the parent's sys.path, as they would a user's package.
    """
    root = str(Path(reward_fns.__file__).resolve().parents[reward_fns.__name__.count(".")])
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    yield f"{reward_fns.__name__}:"
    if added:
        sys.path.remove(root)
