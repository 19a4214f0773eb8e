from collections import Counter

from etr_dist.reward import grade
from etr_dist.reward.answer_sets import load_adversarial, load_labelled

MIN_AGREEMENT = 0.99  # benchmarks/grader_bench.py reports it beside math-verify's
# The failure classes of issue 10, each with hand-written cases (ids v2-<class>-NN).
V2_CLASSES = (
    "dollar-gold",
    "last-span",
    "frac-forms",
    "relation",
    "units-text",
    "intervals",
    "matrices",
    "separators",
    "digit-in-word",
    "boxes",
    "arithmetic",
)


def test_labelled_set_is_large_and_balanced():
    cases = load_labelled()
    sources = Counter(case.source for case in cases)
    labels = Counter(case.label for case in cases)
    assert len(cases) >= 450
    assert sources["math"] >= 200 and sources["gsm8k"] >= 60 and sources["arithmetic"] >= 10
    assert labels[0] >= 150 and labels[1] >= 250
    assert len({case.id for case in cases}) == len(cases)
    for name in V2_CLASSES:
        labels_in_class = {case.label for case in cases if case.id.startswith(f"v2-{name}-")}
        assert labels_in_class == {0, 1}, name  # every class has right and wrong answers


def test_grader_agrees_with_the_labels():
    cases = load_labelled()
    wrong = [
        (c.id, c.note)
        for c in cases
        if grade(c.response, c.reference, last_number_fallback=c.last_number_fallback).score != c.label
    ]
    assert 1 - len(wrong) / len(cases) >= MIN_AGREEMENT, wrong


def test_adversarial_set_expands_its_megabyte_inputs():
    cases = {case.id: case for case in load_adversarial()}
    assert len(cases) >= 25
    assert len(cases["megabyte-digits"].response) == 1_000_000
    assert cases["unbalanced-open"].response.count("{") == 5001
    assert cases["tower-vs-one"].response.count("9^{") == 3
