import json

import numpy as np
import pytest

from etr_dist.data.records import Prompt
from etr_dist.data.stream import PromptStream

PROMPTS = [Prompt(id=f"p{i}", text=f"q{i}", answer=str(i), source="test") for i in range(7)]


def ids(prompts: list[Prompt]) -> list[str]:
    return [p.id for p in prompts]


def test_each_epoch_is_the_permutation_seeded_with_seed_plus_epoch():
    stream = PromptStream(PROMPTS, seed=5)
    drawn = ids(stream.next(21))
    for epoch in range(3):
        order = np.random.default_rng(5 + epoch).permutation(7)
        assert drawn[7 * epoch : 7 * (epoch + 1)] == [f"p{i}" for i in order]
    assert sorted(drawn[:7]) == sorted(ids(PROMPTS))
    assert drawn[:7] != drawn[7:14]
    assert stream.state_dict() == {"epoch": 2, "position": 7, "seed": 5, "num_prompts": 7}


@pytest.mark.parametrize("checkpoint_after", [1, 3, 5])  # 3, 9, 15 drawn: mid-epoch 0, 1 and 2
def test_resumed_stream_draws_what_an_uninterrupted_one_would(checkpoint_after):
    uninterrupted = PromptStream(PROMPTS, seed=11)
    expected = [ids(uninterrupted.next(3)) for _ in range(8)]
    first = PromptStream(PROMPTS, seed=11)
    drawn = [ids(first.next(3)) for _ in range(checkpoint_after)]
    state = json.loads(json.dumps(first.state_dict()))
    resumed = PromptStream(PROMPTS, seed=11)
    resumed.load_state_dict(state)
    drawn += [ids(resumed.next(3)) for _ in range(8 - checkpoint_after)]
    assert drawn == expected


def test_resume_exactly_at_an_epoch_boundary():
    uninterrupted = PromptStream(PROMPTS, seed=0)
    expected = ids(uninterrupted.next(7)) + ids(uninterrupted.next(10))
    first = PromptStream(PROMPTS, seed=0)
    head = ids(first.next(7))
    assert first.state_dict()["epoch"] == 0 and first.state_dict()["position"] == 7
    resumed = PromptStream(PROMPTS, seed=0)
    resumed.load_state_dict(first.state_dict())
    assert head + ids(resumed.next(10)) == expected
    assert resumed.state_dict()["epoch"] == 2 and resumed.state_dict()["position"] == 3


def test_mismatched_state_and_empty_input_are_refused():
    state = PromptStream(PROMPTS, seed=0).state_dict()
    with pytest.raises(ValueError, match="saved with \\(seed, num_prompts\\)=\\(0, 7\\)"):
        PromptStream(PROMPTS[:6], seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match="saved with"):
        PromptStream(PROMPTS, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="position 9 outside"):
        PromptStream(PROMPTS, seed=0).load_state_dict({**state, "position": 9})
    with pytest.raises(ValueError, match="at least one prompt"):
        PromptStream([], seed=0)
