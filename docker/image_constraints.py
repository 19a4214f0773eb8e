"""Print pip constraints keeping the base image's vLLM, torch and transformers, once its vLLM matches the pin.

Run while building docker/Dockerfile (Python >= 3.11 for tomllib):
`python3 docker/image_constraints.py pyproject.toml > constraints.txt`.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import tomllib

KEPT = ("vllm", "torch", "transformers")


def pinned_vllm(pyproject: Path) -> str:
    """The X of `vllm==X` in the `vllm` extra of pyproject.toml."""
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    pins = [req.removeprefix("vllm==") for req in extras.get("vllm", []) if req.startswith("vllm==")]
    if len(pins) != 1:
        raise ValueError(f"{pyproject}: expected one `vllm==X` in the `vllm` extra, got {pins}")
    return pins[0]


def main(argv: list[str]) -> int:
    pyproject = Path(argv[0] if argv else "pyproject.toml")
    wanted = pinned_vllm(pyproject)
    try:
        installed = version("vllm")
    except PackageNotFoundError:
        print("image_constraints: the base image has no `vllm` distribution installed", file=sys.stderr)
        return 1
    if installed.split("+")[0] != wanted:
        print(
            f"image_constraints: the base image has vllm {installed} but {pyproject} pins vllm=={wanted}; "
            f"build with --build-arg VLLM_VERSION={wanted} (or change the pin)",
            file=sys.stderr,
        )
        return 1
    print("\n".join(f"{name}=={version(name)}" for name in KEPT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
