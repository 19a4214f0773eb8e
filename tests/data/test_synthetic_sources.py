import re

import pytest

from etr_dist.config.schema import DataConfig
from etr_dist.data.loading import load_prompts

TEMPLATE = "What is {question}? Put the final answer in \\boxed{{}}."


def arithmetic(**overrides) -> DataConfig:
    return DataConfig(**{"source": "arithmetic", "prompt_template": TEMPLATE, **overrides})


def question_of(text: str) -> str:
    return re.fullmatch(r"What is (.*)\? Put the final answer in \\boxed\{\}\.", text).group(1)


def left_to_right(question: str) -> int:
    tokens = question.split()
    value = int(tokens[0])
    for op, operand in zip(tokens[1::2], tokens[2::2], strict=True):
        value = value + int(operand) if op == "+" else value - int(operand)
    return value


def test_arithmetic_first_prompts_are_fixed_by_the_seed():
    train, evals = load_prompts(arithmetic(max_operand=10, train_size=3, eval_size=2))
    assert [(p.id, p.text, p.answer) for p in train] == [
        ("arithmetic-train-0", "What is 9 - 7? Put the final answer in \\boxed{}.", "2"),
        ("arithmetic-train-1", "What is 2 + 3? Put the final answer in \\boxed{}.", "5"),
        ("arithmetic-train-2", "What is 0 + 0? Put the final answer in \\boxed{}.", "0"),
    ]
    assert [(p.id, p.answer) for p in evals] == [("arithmetic-eval-0", "-4"), ("arithmetic-eval-1", "3")]
    assert question_of(evals[0].text) == "5 - 9"
    assert train[0].messages == [{"role": "user", "content": train[0].text}]
    assert train[0].source == "arithmetic" and train[0].prompt_token_ids is None


def test_arithmetic_answers_operands_and_ids():
    train, evals = load_prompts(arithmetic(max_operand=7, num_operands=3, train_size=300, eval_size=40))
    for prompt in train + evals:
        question = question_of(prompt.text)
        assert prompt.answer == str(left_to_right(question))
        assert all(0 <= int(n) <= 7 for n in question.split()[::2]) and len(question.split()) == 5
    assert len({p.id for p in train + evals}) == 340


def test_arithmetic_is_seeded_and_splits_are_disjoint():
    cfg = arithmetic(max_operand=10, train_size=500, eval_size=100)
    train, evals = load_prompts(cfg)
    assert load_prompts(cfg) == (train, evals)
    assert load_prompts(arithmetic(max_operand=10, train_size=500, eval_size=100, seed=1))[1] != evals
    eval_questions = [p.text for p in evals]
    assert len(set(eval_questions)) == 100
    assert not set(eval_questions) & {p.text for p in train}
    assert load_prompts(arithmetic(max_operand=10, train_size=20, eval_size=100))[1] == evals


def test_arithmetic_small_question_space():
    # 0..1 with + or -: 2 * 2 * 2 = 8 questions; 5 go to eval, train draws only the other 3.
    train, evals = load_prompts(arithmetic(max_operand=1, train_size=50, eval_size=5))
    assert len({p.text for p in train}) == 3 and len(train) == 50
    with pytest.raises(ValueError, match="only 8 exist"):
        load_prompts(arithmetic(max_operand=1, eval_size=8))
    with pytest.raises(ValueError, match="num_operands"):
        load_prompts(arithmetic(num_operands=1))


def test_arithmetic_mixed_difficulty_spans_operand_counts_and_sizes():
    cfg = arithmetic(max_operand=30, num_operands=3, mixed_difficulty=True, train_size=600, eval_size=60)
    train, evals = load_prompts(cfg)
    questions = [question_of(p.text) for p in train + evals]
    counts = [len(q.split()) // 2 + 1 for q in questions]
    largest = [max(int(n) for n in q.split()[::2]) for q in questions]
    assert set(counts) == {2, 3} and 0.35 < counts.count(2) / len(counts) < 0.65
    assert max(largest) <= 30 and sum(m <= 10 for m in largest) > 0.25 * len(largest)
    assert all(p.answer == str(left_to_right(question_of(p.text))) for p in train + evals)
    assert load_prompts(cfg) == (train, evals) and not {p.text for p in evals} & {p.text for p in train}
    # the question space of a mix: 0..1 with 2 operands (8) or 3 operands (32)
    with pytest.raises(ValueError, match="only 40 exist"):
        load_prompts(arithmetic(max_operand=1, num_operands=3, mixed_difficulty=True, eval_size=40))


def test_system_prompt_goes_first_in_messages():
    train, _ = load_prompts(arithmetic(train_size=1, eval_size=1, system_prompt="Be brief."))
    assert train[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": train[0].text},
    ]


def test_bad_prompt_template_and_unknown_source_name_the_problem():
    with pytest.raises(ValueError, match="does not contain"):
        load_prompts(arithmetic(prompt_template="Solve it."))
    with pytest.raises(ValueError, match="not a format string"):
        load_prompts(arithmetic(prompt_template="{question} \\boxed{}"))
    with pytest.raises(KeyError, match="known: \\['arithmetic', 'gsm_symbolic', 'jsonl', 'parquet'\\]"):
        load_prompts(DataConfig(source="mathqa"))


def test_gsm_symbolic_is_seeded_disjoint_and_eval_ignores_train_size():
    cfg = DataConfig(source="gsm_symbolic", train_size=200, eval_size=30, prompt_template="{question}")
    train, evals = load_prompts(cfg)
    assert load_prompts(cfg) == (train, evals)
    assert len(evals) == 30 and 195 <= len(train) <= 200
    assert not {p.text for p in evals} & {p.text for p in train}
    assert evals[0].id == "gsm_symbolic-eval-0" and train[0].id == "gsm_symbolic-train-0"
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", p.answer) for p in train + evals)
    assert load_prompts(DataConfig(source="gsm_symbolic", train_size=5, eval_size=30))[1] == evals
    assert load_prompts(DataConfig(source="gsm_symbolic", train_size=5, eval_size=30, seed=3))[1] != evals
