"""A custom reward (config `reward.fn`) that gives a random tiny model's groups variance, for the e2e tests."""

import zlib


def hashed_reward(response: str, reference: str) -> float:
    """Prompts whose answer is a multiple of 3 always score 0 (all-equal groups); others score by a response hash."""
    if int(reference) % 3 == 0:
        return 0.0
    return float(zlib.crc32(response.encode("utf-8")) % 2)
