"""Send each generate request to the rollout worker with the fewest prompts outstanding."""

from __future__ import annotations


class LeastLoadedRouter:
    def __init__(self, num_workers: int) -> None:
        if num_workers < 1:
            raise ValueError(f"a router needs at least one worker, got {num_workers}")
        self._outstanding = [0] * num_workers
        self._retired: set[int] = set()

    @property
    def outstanding(self) -> tuple[int, ...]:
        return tuple(self._outstanding)

    def assign(self, n_prompts: int) -> int:
        """The least-loaded worker's index (ties go to the lowest), now charged with n_prompts."""
        if n_prompts < 1:
            raise ValueError(f"a request carries at least one prompt, got {n_prompts}")
        live = [i for i in range(len(self._outstanding)) if i not in self._retired]
        if not live:
            raise RuntimeError("every rollout worker is dead (out of restarts: cluster.max_actor_restarts)")
        index = min(live, key=lambda i: (self._outstanding[i], i))
        self._outstanding[index] += n_prompts
        return index

    def done(self, worker_index: int, n_prompts: int) -> None:
        if not 0 <= worker_index < len(self._outstanding):
            raise IndexError(f"worker index {worker_index} out of range [0, {len(self._outstanding)})")
        if not 0 < n_prompts <= self._outstanding[worker_index]:
            raise ValueError(
                f"worker {worker_index} has {self._outstanding[worker_index]} prompts outstanding, "
                f"cannot finish {n_prompts}"
            )
        self._outstanding[worker_index] -= n_prompts

    def retire(self, worker_index: int) -> None:
        """A worker that died for good (out of restarts) gets no further requests."""
        self._retired.add(worker_index)
