"""Which model to score: an HF folder as is; a run or checkpoint folder exported to an HF folder first."""

from __future__ import annotations

from pathlib import Path


def is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def resolve_model(path: str | Path, export_dir: Path) -> Path:
    """The HF folder to load: `path` itself if it has config.json, else its checkpoint exported into export_dir.

    A run folder, its checkpoints/ folder or one step_<N> folder all work (driver.checkpoint.find_checkpoint);
    anything else raises FileNotFoundError naming the path.
    """
    path = Path(path).expanduser()
    if is_hf_folder(path):
        return path
    from etr_dist.driver.checkpoint import find_checkpoint

    find_checkpoint(path)  # a clear error before DeepSpeed is imported
    from etr_dist.driver.export import export_hf  # DeepSpeed: only for checkpoints

    return export_hf(path, export_dir)
