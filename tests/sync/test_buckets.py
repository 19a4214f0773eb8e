import pytest

from etr_dist.sync.buckets import bucketize

MB = 1024 * 1024


def test_fills_buckets_in_order_up_to_the_limit():
    sizes = [("a", MB), ("b", MB), ("c", MB), ("d", MB), ("e", MB)]
    assert bucketize(sizes, bucket_mb=2) == [["a", "b"], ["c", "d"], ["e"]]


def test_an_oversized_tensor_gets_its_own_bucket():
    sizes = [("small", MB // 2), ("huge", 5 * MB), ("tail", MB // 2)]
    assert bucketize(sizes, bucket_mb=1) == [["small"], ["huge"], ["tail"]]


def test_fractional_megabytes_and_exact_fit():
    sizes = [("a", MB // 4), ("b", MB // 4), ("c", MB // 4)]
    assert bucketize(sizes, bucket_mb=0.5) == [["a", "b"], ["c"]]


def test_empty_input_gives_no_buckets():
    assert bucketize([], bucket_mb=1) == []


@pytest.mark.parametrize("bucket_mb", [0, -1])
def test_rejects_a_non_positive_bucket_size(bucket_mb):
    with pytest.raises(ValueError, match="bucket_mb must be positive"):
        bucketize([("a", 1)], bucket_mb)


def test_rejects_a_negative_tensor_size():
    with pytest.raises(ValueError, match="tensor 'a' has a negative size"):
        bucketize([("a", -1)], 1)
