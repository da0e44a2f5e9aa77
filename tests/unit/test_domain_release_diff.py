"""domain/release_diff.py: how two releases differ, without a rack."""

from __future__ import annotations

import pytest

from shipmate.domain.release_diff import EnvDiff, commit_of, manifest_diff


def test_env_diff_groups_keys_sorted() -> None:
    found = EnvDiff.of({"B": "1", "A": "x", "GONE": "g"}, {"A": "y", "B": "1", "Z": "z", "N": "n"})
    assert found.added == {"N": "n", "Z": "z"}
    assert list(found.added) == ["N", "Z"]
    assert found.changed == {"A": ("x", "y")}
    assert found.removed == {"GONE": "g"}
    assert not found.empty and EnvDiff.of({"A": "1"}, {"A": "1"}).empty


def test_masked_keeps_the_keys_and_hides_every_value() -> None:
    masked = EnvDiff.of({"A": "x", "R": "r"}, {"A": "y", "N": "n"}).masked()
    assert masked == EnvDiff({"N": "****"}, {"A": ("****", "****")}, {"R": "****"})


@pytest.mark.parametrize(
    ("description", "commit"),
    [
        ("build 0123456789ab add a page", "0123456789ab"),
        ("build 0123456789ab", "0123456789ab"),
        ("build BABCDEFGHI", None),  # a build id, no commit
        ("env add:A", None),
        ("my build 0123456789ab", None),
    ],
)
def test_commit_of_a_build_description(description: str, commit: str | None) -> None:
    assert commit_of(description) == commit


def test_manifest_diff_is_unified_and_empty_when_the_same() -> None:
    assert manifest_diff("a: 1\n", "a: 1\n", "R1/m", "R2/m") == ""
    assert manifest_diff("a: 1\nb: 2", "a: 1\nb: 3", "R1/m", "R2/m") == (
        "--- R1/m\n+++ R2/m\n@@ -1,2 +1,2 @@\n a: 1\n-b: 2\n+b: 3\n"
    )
    assert manifest_diff(None, "a: 1\n", "R1/m", "R2/m").endswith("+a: 1\n")
