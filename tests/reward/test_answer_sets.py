from collections import Counter

from etr_dist.reward import grade
from etr_dist.reward.answer_sets import load_adversarial, load_labelled

MIN_AGREEMENT = 0.99  # measured 365/366; benchmarks/grader_bench.py reports it beside math-verify's


def test_labelled_set_is_large_and_balanced():
    cases = load_labelled()
    sources = Counter(case.source for case in cases)
    labels = Counter(case.label for case in cases)
    assert len(cases) >= 300
    assert sources["math"] >= 200 and sources["gsm8k"] >= 60
    assert labels[0] >= 100 and labels[1] >= 100
    assert len({case.id for case in cases}) == len(cases)


def test_grader_agrees_with_the_labels():
    cases = load_labelled()
    wrong = [(c.id, c.note) for c in cases if grade(c.response, c.reference).score != c.label]
    assert 1 - len(wrong) / len(cases) >= MIN_AGREEMENT, wrong


def test_adversarial_set_expands_its_megabyte_inputs():
    cases = {case.id: case for case in load_adversarial()}
    assert len(cases) >= 25
    assert len(cases["megabyte-digits"].response) == 1_000_000
    assert cases["unbalanced-open"].response.count("{") == 5001
    assert cases["tower-vs-one"].response.count("9^{") == 3
