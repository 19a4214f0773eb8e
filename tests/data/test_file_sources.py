import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etr_dist.config.schema import DataConfig
from etr_dist.data.loading import load_prompts
from etr_dist.data.prompts import DataStats
from etr_dist.reward import grade


def write_jsonl(path, rows) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


def good_rows(n: int, offset: int = 0) -> list[dict]:
    return [{"question": f"{i} + 1", "answer": str(i + 1)} for i in range(offset, offset + n)]


def test_malformed_rows_are_skipped_counted_and_logged(tmp_path, caplog):
    rows = [
        {"question": "1 + 1", "answer": "2"},
        {"question": "2 + 2"},  # 1: missing answer
        {"question": None, "answer": "3"},  # 2: null question
        {"question": "", "answer": "4"},  # 3: empty question
        {"question": "5 + 5", "answer": "  "},  # 4: blank answer
        {"question": ["6 + 6"], "answer": "12"},  # 5: question not a string
        {"question": "7 + 7", "answer": 14},  # numeric answers are kept as text
        {"question": "8 + 8", "answer": True},  # 7: a bool is no answer
        {"question": "9 + 9", "answer": "18"},
    ]
    train_path = write_jsonl(tmp_path / "train.jsonl", rows)
    eval_path = write_jsonl(tmp_path / "eval.jsonl", good_rows(2, offset=100))
    stats = DataStats()
    cfg = DataConfig(source="jsonl", train_path=train_path, eval_path=eval_path)
    with caplog.at_level(logging.WARNING, logger="etr_dist.data"):
        train, evals = load_prompts(cfg, stats)
    assert [(p.id, p.text, p.answer) for p in train] == [
        ("jsonl-train-0", "1 + 1", "2"),
        ("jsonl-train-6", "7 + 7", "14"),
        ("jsonl-train-8", "9 + 9", "18"),
    ]
    assert [p.id for p in evals] == ["jsonl-eval-0", "jsonl-eval-1"]
    assert stats.skipped_rows == 6
    assert stats.skipped_by_reason == {
        "missing 'answer'": 1,
        "missing 'question'": 1,
        "empty 'question'": 1,
        "empty 'answer'": 1,
        "'question' is a list, not a string": 1,
        "'answer' is a bool, not a string": 1,
    }
    logged = caplog.text
    assert f"{train_path} row 1 skipped: missing 'answer'" in logged
    assert f"{train_path} row 5 skipped: 'question' is a list, not a string" in logged


def test_custom_keys_template_and_held_out_eval_slice(tmp_path):
    rows = [{"problem": f"p{i}", "solution": f"s{i}"} for i in range(10)]
    cfg = DataConfig(
        source="jsonl",
        train_path=write_jsonl(tmp_path / "t.jsonl", rows),
        question_key="problem",
        answer_key="solution",
        eval_size=3,
        train_size=4,
        prompt_template="Q: {question}",
    )
    train, evals = load_prompts(cfg)
    assert [(p.id, p.text, p.answer) for p in evals] == [
        ("jsonl-eval-7", "Q: p7", "s7"),
        ("jsonl-eval-8", "Q: p8", "s8"),
        ("jsonl-eval-9", "Q: p9", "s9"),
    ]
    assert [p.text for p in train] == ["Q: p0", "Q: p1", "Q: p2", "Q: p3"]


def test_train_rows_repeating_an_eval_question_are_dropped(tmp_path):
    stats = DataStats()
    cfg = DataConfig(
        source="jsonl",
        train_path=write_jsonl(tmp_path / "train.jsonl", good_rows(5)),
        eval_path=write_jsonl(tmp_path / "eval.jsonl", good_rows(2, offset=3)),
    )
    train, evals = load_prompts(cfg, stats)
    assert [p.text for p in train] == ["0 + 1", "1 + 1", "2 + 1"]
    assert [p.text for p in evals] == ["3 + 1", "4 + 1"]
    assert stats.skipped_by_reason == {"question also in the eval split": 2}


def test_parquet_source(tmp_path):
    table = pa.table({"question": ["a", "b", None, "d"], "answer": ["1", "2", "3", "4"]})
    pq.write_table(table, tmp_path / "train.parquet")
    stats = DataStats()
    cfg = DataConfig(source="parquet", train_path=str(tmp_path / "train.parquet"), eval_size=1)
    train, evals = load_prompts(cfg, stats)
    assert [(p.id, p.text) for p in train] == [("parquet-train-0", "a"), ("parquet-train-1", "b")]
    assert [(p.id, p.answer, p.source) for p in evals] == [("parquet-eval-3", "4", "parquet")]
    assert stats.skipped_by_reason == {"missing 'question'": 1}


def test_bad_files_fail_with_an_error_naming_them(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match=f"data file not found: {missing}"):
        load_prompts(DataConfig(source="jsonl", train_path=str(missing)))
    with pytest.raises(ValueError, match="needs data.train_path"):
        load_prompts(DataConfig(source="jsonl"))
    broken = write_jsonl(tmp_path / "broken.jsonl", [*good_rows(2), "{not json"])
    with pytest.raises(ValueError, match=f"cannot read {broken} as json: line 3 is not valid JSON"):
        load_prompts(DataConfig(source="jsonl", train_path=broken))
    good = write_jsonl(tmp_path / "good.jsonl", good_rows(3))
    with pytest.raises(KeyError, match="has no column 'problem'; its columns are \\['question', 'answer'\\]"):
        load_prompts(DataConfig(source="jsonl", train_path=good, question_key="problem"))
    with pytest.raises(ValueError, match="too few to hold out 100 for eval \\(data.eval_size, null = 100\\)"):
        load_prompts(DataConfig(source="jsonl", train_path=good))
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"question": "", "answer": "1"}])
    with pytest.raises(ValueError, match="has no usable rows \\(1 skipped"):
        load_prompts(DataConfig(source="jsonl", train_path=empty, eval_path=good))


def test_file_sources_use_every_row_unless_capped(tmp_path, caplog):
    train_path = write_jsonl(tmp_path / "train.jsonl", good_rows(2500))
    eval_path = write_jsonl(tmp_path / "eval.jsonl", good_rows(150, offset=5000))
    train, evals = load_prompts(DataConfig(source="jsonl", train_path=train_path, eval_path=eval_path))
    assert (len(train), len(evals)) == (2500, 150)  # not the generated sources' 2000 / 100
    capped = DataConfig(source="jsonl", train_path=train_path, eval_path=eval_path, train_size=7, eval_size=2)
    with caplog.at_level(logging.WARNING, logger="etr_dist.data"):
        train, evals = load_prompts(capped)
    assert [p.text for p in train] == [f"{i} + 1" for i in range(7)]
    assert [p.text for p in evals] == ["5000 + 1", "5001 + 1"]
    assert (
        "using the first 7 of 2500 usable train rows (data.train_size=7; null uses them all)" in caplog.text
    )
    assert "using the first 2 of 150 usable eval rows (data.eval_size=2; null uses them all)" in caplog.text


def test_without_an_eval_file_the_last_100_rows_are_held_out_and_said(tmp_path, caplog):
    train_path = write_jsonl(tmp_path / "train.jsonl", good_rows(130))
    with caplog.at_level(logging.WARNING, logger="etr_dist.data"):
        train, evals = load_prompts(DataConfig(source="jsonl", train_path=train_path))
    assert [p.text for p in train] == [f"{i} + 1" for i in range(30)]
    assert [p.text for p in evals] == [f"{i} + 1" for i in range(30, 130)]
    assert f"the last 100 of 130 usable rows of {train_path} are held out for eval" in caplog.text
    train, evals = load_prompts(DataConfig(source="jsonl", train_path=train_path, eval_size=0))
    assert (len(train), len(evals)) == (130, 0)


def test_generated_sources_keep_their_sizes_when_unset():
    train, evals = load_prompts(DataConfig(source="arithmetic", max_operand=50))
    assert (len(train), len(evals)) == (2000, 100)
    train, evals = load_prompts(DataConfig(source="arithmetic", max_operand=50, train_size=9, eval_size=4))
    assert (len(train), len(evals)) == (9, 4)


MATH_SOLUTION = (
    "Multiply both sides by $2$: the sum is $\\frac{3}{2} \\cdot 2 = 3$, so half of it is "
    "$\\boxed{\\frac{3}{2}}$."
)


@pytest.mark.parametrize(
    ("answer_key", "reference"), [("solution", MATH_SOLUTION), ("answer", "\\frac{3}{2}")]
)
def test_math_style_rows_grade_against_the_boxed_answer_of_the_solution(tmp_path, answer_key, reference):
    """MATH's keys (problem, solution, answer): a whole boxed solution works as the reference, as does answer."""
    row = {"problem": "What is half of 3?", "solution": MATH_SOLUTION, "answer": "\\frac{3}{2}", "level": 3}
    rows = [row, {**row, "problem": "What is 3 / 2?"}]
    cfg = DataConfig(
        source="jsonl",
        train_path=write_jsonl(tmp_path / "train.jsonl", rows),
        eval_path=write_jsonl(tmp_path / "test.jsonl", rows[:1]),
        question_key="problem",
        answer_key=answer_key,
    )
    train, evals = load_prompts(cfg)
    assert [p.text for p in train] == ["What is 3 / 2?"] and train[0].answer == reference
    assert not train[0].last_number_fallback
    assert grade("so the answer is $\\boxed{1.5}$", train[0].answer).score == 1.0
    assert grade("The answer is \\boxed{\\dfrac{3}{2}}.", evals[0].answer).score == 1.0
    # the solution's other numbers are no answer
    assert grade("It is \\boxed{3}.", train[0].answer).score == 0.0
