import pytest

from etr_dist.data.records import Completion, Prompt
from etr_dist.driver.groups import GroupAssembler, accuracy, rollout_metrics

PROMPT = Prompt(id="p0", text="1 + 1", answer="2", source="arithmetic")


def completion(idx: int, n_tokens: int = 3, version: int = 0) -> Completion:
    return Completion("p0", idx, list(range(n_tokens)), [-0.1] * n_tokens, f"text {idx}", "stop", version)


def test_group_completes_when_all_graded_and_is_ordered_by_sample_idx():
    assembler = GroupAssembler(group_size=3)
    assert assembler.add(PROMPT, [completion(2)], [1.0], ["match_string"]) is None
    assert assembler.add(PROMPT, [completion(0)], [0.0], ["mismatch"]) is None
    assert assembler.pending == 1
    group = assembler.add(PROMPT, [completion(1)], [1.0], ["match_string"])
    assert [c.sample_idx for c in group.completions] == [0, 1, 2]
    assert group.rewards == [0.0, 1.0, 1.0]
    assert group.grade_reasons == ["mismatch", "match_string", "match_string"]
    assert assembler.pending == 0
    assert group.pass_rate == pytest.approx(2 / 3)
    assert not group.is_degenerate


def test_all_equal_group_is_degenerate():
    assembler = GroupAssembler(group_size=2)
    group = assembler.add(PROMPT, [completion(0), completion(1)], [0.0, 0.0], ["mismatch", "no_answer"])
    assert group.is_degenerate


def test_too_many_completions_is_an_error():
    assembler = GroupAssembler(group_size=1)
    with pytest.raises(ValueError, match="prompt p0: 2 completions for a group of 1"):
        assembler.add(PROMPT, [completion(0), completion(1)], [0.0, 1.0], ["a", "b"])


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="2 completions, 1 rewards"):
        GroupAssembler(2).add(PROMPT, [completion(0), completion(1)], [0.0], ["a"])


def test_rollout_metrics_by_hand():
    assembler = GroupAssembler(group_size=2)
    group = assembler.add(
        PROMPT, [completion(0, 4, version=3), completion(1, 2, version=2)], [1.0, 0.0], ["m", "x"]
    )
    metrics = rollout_metrics([group], max_new_tokens=4, step=3)
    assert metrics["critic/score/mean"] == 0.5
    assert metrics["response_length/mean"] == 3.0  # (4 + 2) / 2
    assert metrics["response_length/max"] == 4.0
    assert metrics["response_length/clip_ratio"] == 0.5  # one of two hit max_new_tokens
    assert metrics["sampling/staleness_mean"] == 0.5  # (3-3 + 3-2) / 2
    assert metrics["sampling/staleness_max"] == 1.0
    assert accuracy([group]) == 0.5
