"""The runtime's rollouts, restarts and shims, as the rack's own user.

These tests build in pytest's temporary directories, which only root may enter: an app
user could not reach its build there by path. Apps kept apart (a user each, cgroups) are
tests/integration/test_isolation.py's, on a rack whose home app users can reach.
"""

from __future__ import annotations

import pytest

from shipmate.runtimes.local.isolation import SWITCH


@pytest.fixture(autouse=True)
def _not_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SWITCH, "off")
