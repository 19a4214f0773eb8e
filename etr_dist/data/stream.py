"""An endless, seeded, resumable prompt order: a resumed run draws exactly what an uninterrupted one would."""

from __future__ import annotations

from typing import Any

import numpy as np

from etr_dist.data.records import Prompt


class PromptStream:
    """Epoch e visits every prompt once in the order of a permutation seeded with seed + e."""

    def __init__(self, prompts: list[Prompt], seed: int) -> None:
        if not prompts:
            raise ValueError("PromptStream needs at least one prompt")
        self.prompts = list(prompts)
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> list[int]:
        return np.random.default_rng(self.seed + epoch).permutation(len(self.prompts)).tolist()

    def next(self, n: int) -> list[Prompt]:
        """The next n prompts, continuing into the next epoch's order when this one runs out."""
        drawn = []
        for _ in range(n):
            if self.position == len(self.prompts):
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._epoch_order(self.epoch)
            drawn.append(self.prompts[self._order[self.position]])
            self.position += 1
        return drawn

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "num_prompts": len(self.prompts),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at state's epoch and position; refuses a state saved over a different prompt set or seed."""
        saved = (state["seed"], state["num_prompts"])
        if saved != (self.seed, len(self.prompts)):
            raise ValueError(
                f"prompt stream state was saved with (seed, num_prompts)={saved}, "
                f"this stream has {(self.seed, len(self.prompts))}"
            )
        if not 0 <= state["position"] <= len(self.prompts):
            raise ValueError(f"prompt stream position {state['position']} outside [0, {len(self.prompts)}]")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_order(self.epoch)
