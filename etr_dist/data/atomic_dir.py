"""Build a cache folder once, safely under concurrent callers (several Ray actors may ask at once)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def build_once(final_dir: Path, build: Callable[[Path], None]) -> Path:
    """Return final_dir, building it first with build(tmp_dir) unless it exists; a rename makes it atomic."""
    final_dir = Path(final_dir)
    if final_dir.is_dir():
        return final_dir
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.", dir=final_dir.parent))
    try:
        build(tmp_dir)
        os.rename(tmp_dir, final_dir)
    except OSError:
        if not final_dir.is_dir():
            raise
        # Another caller renamed its finished copy first: theirs is identical, keep it.
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return final_dir
