import pytest

from ktune import search


def test_specs_are_katibs():
    assert search.double(0.001, 0.1, distribution="logUniform").spec("lr") == {
        "name": "lr", "parameterType": "double",
        "feasibleSpace": {"min": "0.001", "max": "0.1", "distribution": "logUniform"}}
    assert search.int(1, 8, step=1).feasible_space() == {"min": "1", "max": "8", "step": "1"}
    assert search.categorical(["sgd", "adam"]).feasible_space() == {"list": ["sgd", "adam"]}
    assert search.discrete([4, 1, 2]).feasible_space() == {"list": ["1", "2", "4"]}


def test_trial_text_is_typed_back():
    assert search.double(0, 1).cast("0.25") == 0.25
    assert search.int(1, 8).cast("3") == 3
    assert search.categorical([16, 32, "auto"]).cast("32") == 32
    assert search.categorical([True, False]).cast("false") is False
    assert search.discrete([0.5, 1.5]).cast("1.5") == 1.5


@pytest.mark.parametrize("build, argument", [
    (lambda: search.double("a", 1), "min"),
    (lambda: search.double(0, float("inf")), "max"),
    (lambda: search.double(1, 0), "min"),
    (lambda: search.double(0, 1, step=-1), "step"),
    (lambda: search.double(0, 1, distribution="loguniform"), "distribution"),
    (lambda: search.double(0, 1, distribution="logUniform"), "distribution"),
    (lambda: search.int(1.5, 3), "min"),
    (lambda: search.int(5, 3), "min"),
    (lambda: search.categorical("abc"), "list"),
    (lambda: search.categorical([]), "list"),
    (lambda: search.categorical(["a", "a"]), "list"),
    (lambda: search.discrete([1, "x"]), "list[1]"),
])
def test_bad_arguments_name_the_argument(build, argument):
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    assert str(info.value).startswith(f"{argument}:"), info.value
