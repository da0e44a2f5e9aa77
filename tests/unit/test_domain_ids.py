import re

import pytest

from shipmate.domain import ids
from shipmate.domain.errors import InvalidInput, ShipmateError

DRAWS = 10_000


@pytest.mark.parametrize(
    ("factory", "prefix"),
    [(ids.new_build_id, "B"), (ids.new_release_id, "R"), (ids.new_promotion_id, "P")],
)
def test_ids_have_prefix_and_nine_uppercase_letters_and_do_not_repeat(factory, prefix):
    drawn = [factory() for _ in range(DRAWS)]
    pattern = re.compile(prefix + "[A-Z]{9}")
    assert all(pattern.fullmatch(i) for i in drawn)
    assert len(set(drawn)) == DRAWS


def test_ids_use_the_whole_alphabet():
    # A generator stuck on a few letters would still pass the format check.
    letters = {c for _ in range(1000) for c in ids.new_release_id()[1:]}
    assert letters == set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_new_ids_are_recognised():
    assert ids.is_build_id(ids.new_build_id())
    assert ids.is_release_id(ids.new_release_id())


@pytest.mark.parametrize(
    ("value", "build", "release"),
    [
        ("BABCDEFGHI", True, False),
        ("RBCDEFGHIJ", False, True),
        ("babcdefghi", False, False),
        ("Babcdefghi", False, False),
        ("BABCDEFGH", False, False),
        ("BABCDEFGHIJ", False, False),
        ("BABCDEFGH1", False, False),
        (" BABCDEFGHI", False, False),
        ("BABCDEFGHI\n", False, False),
        ("PABCDEFGHI", False, False),
        ("", False, False),
        (None, False, False),
        (123, False, False),
    ],
)
def test_id_checks_are_exact(value, build, release):
    assert ids.is_build_id(value) is build
    assert ids.is_release_id(value) is release


@pytest.mark.parametrize("name", ["a", "myapp", "my-app-2", "a" * 30, "x-", "a1"])
def test_valid_app_names_are_returned(name):
    assert ids.validate_app_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "1app", "-app", "MyApp", "my_app", "my.app", "a" * 31, "app\n", " app"]
)
def test_invalid_app_names_are_rejected_with_the_rule(name):
    with pytest.raises(InvalidInput) as raised:
        ids.validate_app_name(name)
    assert str(raised.value) == (
        f"invalid app name {name!r}: use 1-30 characters a-z, 0-9 and -, starting with a letter"
    )
    assert isinstance(raised.value, ShipmateError)


def test_app_name_re_is_the_spec_pattern():
    assert ids.APP_NAME_RE.pattern == "[a-z][a-z0-9-]{0,29}"


def test_release_hash_is_the_lowercase_id():
    assert ids.release_hash("RZYXWVUTSR") == "rzyxwvutsr"


def test_process_ids_name_service_and_release_and_rarely_repeat():
    drawn = [ids.new_process_id("web", "RZYXWVUTSR") for _ in range(DRAWS)]
    assert all(re.fullmatch(r"web-rzyxwvutsr-[a-z0-9]{5}", p) for p in drawn)
    # 36**5 suffixes: about one collision is expected in 10,000 draws (the birthday bound), so
    # the runtime must still check a new id against its live processes. Ten would mean a
    # broken generator.
    assert len(set(drawn)) > DRAWS - 10


def test_process_id_keeps_dashed_service_names():
    assert ids.new_process_id("api-v2", "RABCDEFGHI").startswith("api-v2-rabcdefghi-")
