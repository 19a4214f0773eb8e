"""Synthetic graded groups with hand-picked tokens, rewards and engine log-probs."""

from __future__ import annotations

import random

from etr_dist.data.records import Completion, Group, Prompt


def make_group(
    prompt_id: str,
    prompt_ids: list[int],
    responses: list[list[int]],
    rewards: list[float],
    logprob_seed: int = 0,
    policy_version: int = 0,
) -> Group:
    rng = random.Random(logprob_seed)
    prompt = Prompt(id=prompt_id, text="q", answer="a", source="test", prompt_token_ids=tuple(prompt_ids))
    completions = [
        Completion(
            prompt_id=prompt_id,
            sample_idx=i,
            token_ids=list(tokens),
            logprobs=[-rng.uniform(0.1, 2.0) for _ in tokens],
            text="",
            finish_reason="stop",
            policy_version=policy_version,
        )
        for i, tokens in enumerate(responses)
    ]
    return Group(prompt=prompt, completions=completions, rewards=list(rewards))


def random_groups(
    num_groups: int,
    group_size: int,
    vocab_size: int,
    seed: int = 0,
    max_prompt: int = 7,
    max_response: int = 9,
) -> list[Group]:
    """Groups with varied prompt/response lengths and 0/1 rewards that are never all equal."""
    rng = random.Random(seed)
    groups = []
    for g in range(num_groups):
        prompt = [rng.randrange(3, vocab_size) for _ in range(rng.randint(2, max_prompt))]
        responses = [
            [rng.randrange(3, vocab_size) for _ in range(rng.randint(1, max_response))]
            for _ in range(group_size)
        ]
        rewards = [float(rng.random() < 0.5) for _ in range(group_size)]
        rewards[0], rewards[1] = 1.0, 0.0
        groups.append(
            make_group(f"p{g}", prompt, responses, rewards, logprob_seed=seed * 100 + g, policy_version=g)
        )
    return groups
