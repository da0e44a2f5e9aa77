import pytest

from shipmate.domain.envs import (
    KEY_RE,
    MAX_VARIABLE,
    apply_change,
    check_size,
    describe_change,
    format_env,
    parse_assignments,
    validate_keys,
)
from shipmate.domain.errors import InvalidInput


def test_parse_assignments_keeps_equals_signs_and_empty_values():
    assert parse_assignments(["FOO=bar", "URL=postgres://u:p@h/db?a=b", "EMPTY=", "_x1=y"]) == {
        "FOO": "bar",
        "URL": "postgres://u:p@h/db?a=b",
        "EMPTY": "",
        "_x1": "y",
    }


def test_parse_assignments_last_value_wins():
    assert parse_assignments(["A=1", "A=2"]) == {"A": "2"}


def test_parse_assignments_of_nothing_is_empty():
    assert parse_assignments([]) == {}


@pytest.mark.parametrize("item", ["FOO", "=x", "FO-O=x", "FOO BAR=x", " FOO=x", ""])
def test_parse_assignments_names_the_bad_item(item):
    with pytest.raises(InvalidInput) as raised:
        parse_assignments(["GOOD=1", item])
    assert str(raised.value) == (
        f'invalid environment assignment "{item}": use KEY=value with KEY of letters, digits and _'
    )


def test_a_key_starting_with_a_digit_says_so():
    with pytest.raises(InvalidInput) as raised:
        parse_assignments(["1ABC=1"])
    assert str(raised.value) == (
        'invalid environment assignment "1ABC=1": a key cannot start with a digit '
        "(use letters, digits and _)"
    )
    with pytest.raises(InvalidInput, match='"1ABC": a key cannot start with a digit'):
        validate_keys(["1ABC"])


@pytest.mark.parametrize("key", ["PORT", "APP", "SERVICE", "RELEASE", "BUILD"])
def test_platform_keys_are_refused(key):
    with pytest.raises(InvalidInput) as raised:
        parse_assignments([f"{key}=9999"])
    assert str(raised.value) == (
        f"{key} is set by shipmate for every process and cannot be changed: use another name "
        "(reserved: APP, BUILD, PORT, RELEASE, SERVICE)"
    )
    assert validate_keys([key]) == [key]  # unsetting one is harmless


def test_a_variable_too_large_for_linux_is_refused():
    assert parse_assignments(["BIG=" + "x" * (MAX_VARIABLE - 5)])
    with pytest.raises(InvalidInput) as raised:
        parse_assignments(["BIG=" + "x" * (MAX_VARIABLE - 4)])
    assert str(raised.value).startswith("BIG is too large (128 KiB): one variable may hold at")
    with pytest.raises(InvalidInput, match=r"BIG is too large \(10.00 MiB\)"):
        parse_assignments(["BIG=" + "x" * 10 * 1024 * 1024])


def test_an_environment_too_large_for_linux_is_refused():
    each = {f"K{i}": "x" * 100_000 for i in range(18)}
    check_size(each)
    each["K18"] = "x" * 100_000
    with pytest.raises(InvalidInput) as raised:
        check_size(each)
    assert str(raised.value) == (
        "environment too large: 1.81 MiB in all, the limit is 1.75 MiB (Linux passes about "
        "2 MiB of environment and arguments to a process): unset or shrink some variables"
    )


def test_validate_keys_returns_keys_in_order_without_repeats():
    assert validate_keys(["B", "A", "B", "_c"]) == ["B", "A", "_c"]


@pytest.mark.parametrize("key", ["1FOO", "FOO=bar", "", "A-B"])
def test_validate_keys_names_the_bad_key(key):
    with pytest.raises(InvalidInput) as raised:
        validate_keys(["OK", key])
    assert f'invalid environment key "{key}"' in str(raised.value)
    assert "\n" not in str(raised.value)


def test_key_re():
    assert KEY_RE.fullmatch("A_1")
    assert not KEY_RE.fullmatch("1A")


def test_apply_change_merges_and_does_not_mutate():
    current = {"A": "1", "B": "2"}
    result = apply_change(current, {"B": "3", "C": "4"})
    assert result == {"A": "1", "B": "3", "C": "4"}
    assert current == {"A": "1", "B": "2"}


def test_apply_change_unsets_and_ignores_absent_keys():
    assert apply_change({"A": "1", "B": "2"}, {}, unset=["A", "MISSING"]) == {"B": "2"}


def test_apply_change_replace_keeps_only_the_new_set():
    assert apply_change({"A": "1", "B": "2"}, {"C": "3"}, replace=True) == {"C": "3"}


def test_apply_change_replace_minus_unset():
    assert apply_change({"A": "1"}, {"B": "2", "C": "3"}, unset=["C"], replace=True) == {"B": "2"}


def test_apply_change_unset_wins_over_set():
    assert apply_change({}, {"A": "1"}, unset=["A"]) == {}


@pytest.mark.parametrize(
    ("old", "new", "description"),
    [
        ({}, {"FOO": "bar"}, "env add:FOO"),
        (
            {"C": "1", "D": "1", "E": "1"},
            {"B": "1", "A": "1", "C": "2", "E": "1"},
            "env add:A add:B change:C remove:D",
        ),
        ({"Z": "1", "A": "1"}, {}, "env remove:A remove:Z"),
        ({"B": "1", "A": "1"}, {"B": "2", "A": "2"}, "env change:A change:B"),
        ({"A": "x"}, {"A": ""}, "env change:A"),
        ({"A": "1"}, {"B": "1"}, "env add:B remove:A"),
    ],
)
def test_describe_change(old, new, description):
    assert describe_change(old, new) == description


@pytest.mark.parametrize(("old", "new"), [({}, {}), ({"A": "1", "B": ""}, {"B": "", "A": "1"})])
def test_describe_change_of_nothing_is_none(old, new):
    assert describe_change(old, new) is None


def test_describe_change_of_a_replace():
    old = {"A": "1", "B": "2"}
    assert describe_change(old, apply_change(old, {"B": "2", "C": "3"}, replace=True)) == (
        "env add:C remove:A"
    )


def test_format_env_is_sorted_key_value_lines():
    assert format_env({"b": "2", "A": "x=y", "C": ""}) == ["A=x=y", "C=", "b=2"]
    assert format_env({}) == []
