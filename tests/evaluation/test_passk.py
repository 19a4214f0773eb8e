import pytest

from etr_dist.evaluation.passk import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 1, 0.25),  # 1 - C(3,1)/C(4,1) = 1 - 3/4
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (10, 3, 5, 11 / 12),  # 1 - C(7,5)/C(10,5) = 1 - 21/252
        (4, 0, 4, 0.0),  # nothing correct
        (4, 1, 4, 1.0),  # k = n: any correct (n - c < k)
        (8, 6, 3, 1.0),  # fewer wrong samples (2) than k (3): every draw of 3 holds a correct one
    ],
)
def test_pass_at_k_by_hand(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_1_is_the_fraction_correct():
    assert [pass_at_k(7, c, 1) for c in range(8)] == pytest.approx([c / 7 for c in range(8)])


def test_mean_over_items():
    # items (n, c): (4, 1), (4, 0), (4, 4) -> pass@2 = (0.5 + 0 + 1) / 3
    assert mean_pass_at_k([(4, 1), (4, 0), (4, 4)], 2) == pytest.approx(0.5)
    assert mean_pass_at_k([(4, 1), (4, 0), (4, 4)], 1) == pytest.approx((0.25 + 0 + 1) / 3)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)])
def test_bad_arguments_are_refused(n, c, k):
    with pytest.raises(ValueError, match="pass_at_k needs"):
        pass_at_k(n, c, k)


def test_no_items_is_an_error():
    with pytest.raises(ValueError, match="at least one item"):
        mean_pass_at_k([], 1)
