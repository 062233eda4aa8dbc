"""Imports run only downwards: each module imports from its own layer or the layers below it.

The layers are the folders of `playbook/` (README, "Architecture"). A module reaching up (a publisher reading
the playbook model, the ledger importing the engine) is what makes a change ripple the wrong way; this test
names each such import with its file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "playbook"

# From the top down; a module's layer is the first whose prefix matches its dotted name.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("command line", ("playbook.cli", "playbook.__main__")),
    ("output", ("playbook.output",)),
    ("worker", ("playbook.worker",)),
    ("commands", ("playbook.commands",)),
    ("engine", ("playbook.engine",)),
    ("planning", ("playbook.planning",)),
    ("monitoring", ("playbook.monitoring",)),
    ("rendering", ("playbook.rendering",)),
    ("home", ("playbook.home",)),
    ("built-in channels", ("playbook.channels",)),
    ("publisher kit", ("playbook.publishers",)),
    ("storage", ("playbook.ledger",)),
    ("foundation", ("playbook.errors", "playbook.secrets", "playbook.textsafe", "playbook.timeparse",
                    "playbook.durations", "playbook.logs")),
]


def layer_of(module: str) -> int | None:
    for depth, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return depth
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every `playbook.*` module a file imports (in functions and under TYPE_CHECKING too), with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from playbook import secrets` imports the module playbook.secrets.
                candidate = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*candidate.split(".")).with_suffix(".py")).exists() or \
                    (ROOT / Path(*candidate.split("."))).is_dir()
                found.append((node.lineno, candidate if is_module else node.module))
    return [(line, name) for line, name in found if name.startswith("playbook.")]


# playbook/__init__.py is the plugin API: it loads its names lazily from several layers.
MODULES = sorted(path for path in PACKAGE.rglob("*.py") if path != PACKAGE / "__init__.py")


def test_every_module_of_the_package_belongs_to_a_layer() -> None:
    stray = [module_name(path) for path in MODULES if layer_of(module_name(path)) is None]
    assert stray == []


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_module_imports_only_from_its_layer_or_below(path: Path) -> None:
    own = layer_of(module_name(path))
    assert own is not None
    upward = [f"{path.relative_to(ROOT)}:{line} imports {name} ({LAYERS[layer][0]}, above {LAYERS[own][0]})"
              for line, name in imports_of(path)
              if (layer := layer_of(name)) is not None and layer < own]
    assert upward == []
