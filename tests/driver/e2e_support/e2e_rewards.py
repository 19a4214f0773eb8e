"""A custom reward (config `reward.fn`) that gives a random tiny model's groups variance, for the e2e tests."""

import zlib


def hashed_reward(response: str, reference: str) -> float:
    """Prompts whose answer is a multiple of 3 always score 0 (all-equal groups); others score by a response hash."""
    if int(reference) % 3 == 0:
        return 0.0
    return float(zlib.crc32(response.encode("utf-8")) % 2)


def flaky_reward(response: str, reference: str) -> float:
    """hashed_reward, except that some answers get NaN, inf or 7.0 (outside [0, 1]): a buggy user function."""
    bucket = zlib.crc32(response.encode("utf-8")) % 7
    return {0: float("nan"), 1: float("inf"), 2: 7.0}.get(bucket, hashed_reward(response, reference))
