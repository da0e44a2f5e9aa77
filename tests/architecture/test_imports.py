"""The import rules of docs/architecture.md, read from every module's own imports.

Dependencies point inward: the core imports no adapter, the CLI speaks HTTP only, the
adapters import no entrypoint and no use case, the router nothing of the control plane.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "shipmate"

# package -> what it must not import (each a shipmate subpackage or module, prefix-matched)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "domain": (
        "store",
        "api",
        "cli",
        "runtimes",
        "router",
        "builder",
        "services",
        "rack",
        "config",
        "web",
        "lifecycle",
    ),
    "cli": ("store", "runtimes", "router", "builder", "services", "api", "web"),
    "runtimes": ("api", "cli", "services", "store", "web"),
    "router": (
        "api",
        "cli",
        "services",
        "store",
        "runtimes",
        "builder",
        "rack",
        "web",
        "lifecycle",
    ),
    "services": (
        "runtimes.local",
        "runtimes.swarm",
        "runtimes.kubernetes",
        "router",
        "api",
        "cli",
        "web",
        "store",
    ),
    "store": ("api", "cli", "services", "runtimes", "router", "web"),
    # The ACME adapter: handed a router (a protocol) and an event sink, like a runtime.
    "acme": (
        "api",
        "cli",
        "services",
        "store",
        "runtimes",
        "router",
        "builder",
        "rack",
        "web",
        "lifecycle",
    ),
    # The console is an entrypoint beside the API: it calls the use cases and the API's own
    # rules (roles, masking), never an adapter or the CLI.
    "web": ("store", "runtimes", "router", "builder", "cli", "rack", "lifecycle", "bootstrap"),
    "common": (
        "domain",
        "store",
        "api",
        "cli",
        "runtimes",
        "router",
        "builder",
        "services",
        "rack",
        "config",
        "web",
        "lifecycle",
    ),
}

# The CLI's `rack` commands may call the rack's lifecycle module (start, stop, adopt the
# router), which is outside cli/ and may import what it needs.
ALLOWED: dict[str, tuple[str, ...]] = {}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every shipmate module `path` imports (absolute names, relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(("shipmate", *path.relative_to(ROOT).with_suffix("").parts[:-1]))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from shipmate import router` imports the subpackage itself
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("shipmate.")]


def violations(layer: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, name in imports_of(path):
            target = name.removeprefix("shipmate.")
            for rule in FORBIDDEN[layer]:
                if target == rule or target.startswith(rule + "."):
                    bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports shipmate.{rule}")
    return sorted(set(bad))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer: str) -> None:
    assert violations(layer) == []


def test_rules_see_every_layer() -> None:
    # A rule about a package that does not exist would pass for ever.
    assert {"domain", "cli", "runtimes", "router", "services", "store", "common", "web"} <= {
        p.name for p in ROOT.iterdir() if p.is_dir()
    }
    assert any(imports_of(p) for p in (ROOT / "services").rglob("*.py"))


def test_module_size() -> None:
    big = [
        f"{p.relative_to(ROOT.parent)}: {n} lines"
        for p in sorted(ROOT.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 500
    ]
    assert big == []
