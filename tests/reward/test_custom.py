import pytest

from etr_dist.reward import load_reward_fn
from etr_dist.reward.custom import resolve_reward_fn

from . import reward_fns

MODULE = reward_fns.__name__


def test_loads_a_function_by_path():
    assert load_reward_fn(f"{MODULE}:bare_number") is reward_fns.bare_number


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        ("no_colon_here", ValueError, "expected 'package.module:function'"),
        (f"{MODULE}:", ValueError, "expected 'package.module:function'"),
        ("etr_dist.no_such_module:grade", ImportError, "cannot import module 'etr_dist.no_such_module'"),
        (f"{MODULE}:missing", ValueError, "has no attribute 'missing'"),
        (f"{MODULE}:NOT_CALLABLE", ValueError, "'NOT_CALLABLE' is a int, not a function"),
        (f"{MODULE}:one_argument", ValueError, "must accept (response, reference)"),
    ],
)
def test_bad_paths_fail_naming_the_path(path, error, message):
    with pytest.raises(error) as raised:
        load_reward_fn(path)
    assert f"reward.fn={path!r}" in str(raised.value)
    assert message in str(raised.value)


def test_no_path_means_the_builtin_grader_with_the_requests_fallback():
    builtin = resolve_reward_fn(None)
    assert builtin("just 6", "6", False).reason == "no_answer"
    assert builtin("just 6", "6", True).reason == "match_string"


def test_a_custom_function_keeps_its_two_argument_signature():
    assert resolve_reward_fn(f"{MODULE}:bare_number")("ab", "cd", True) == 1.0
