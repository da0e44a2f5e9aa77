"""The pieces of app isolation that need neither root nor a rack (test_isolation.py has
the rest, on a real rack as root)."""

from __future__ import annotations

from pathlib import Path

from shipmate.runtimes.local import cgroups, isolation, shim


def test_the_shim_takes_a_user_and_cgroups() -> None:
    options = shim._parse(
        ["--dir", "/d", "--user", "999:995", "--cgroup", "/a", "--cgroup=/b", "--", "sh"]
    )
    assert (options.user, options.cgroups, options.command) == ((999, 995), ["/a", "/b"], ["sh"])
    assert shim._parse(["--dir", "/d", "--", "sh"]).user is None


def test_an_oom_kill_is_read_from_either_cgroup_version(tmp_path: Path) -> None:
    v1, v2, calm = tmp_path / "v1", tmp_path / "v2", tmp_path / "calm"
    for d in (v1, v2, calm):
        d.mkdir()
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    (v2 / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    (calm / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert shim._oom_killed([str(v1)]) and shim._oom_killed([str(calm), str(v2)])
    assert not shim._oom_killed([str(calm), str(tmp_path / "gone")])


def test_user_names_fit_and_step_aside_on_collisions() -> None:
    names = isolation._candidates("a" * 30)
    assert names[0] == "sm-" + "a" * 29 and all(len(n) <= 32 for n in names)
    assert names[1].endswith("-2") and len(set(names)) == len(names)


def test_cgroup_v1_limits_are_written_as_the_kernel_takes_them(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("")
    (tmp_path / "cpu").mkdir()
    groups = cgroups._create_v1(tmp_path, "app", "web-1", 64, 512)
    memory, cpu = (Path(d) for d in groups.dirs)
    assert (memory / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (cpu / "cpu.shares").read_text() == "512"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "50000"
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert cgroups.version(tmp_path) == 1
