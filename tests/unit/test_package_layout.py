"""The package's layout: plug-in modules never import each other, and modules stay small."""

import ast
from pathlib import Path

import pytest

import hcal

SRC = Path(hcal.__file__).parent
PLUGIN_PACKAGES = ("methods", "backbones", "datasets", "weighting")
MAX_LINES = 300
LONGER = {"hierarchy.py"}  # one cohesive class; its module docstring says why


def _plugins(package: str) -> list[Path]:
    return [p for p in sorted((SRC / package).glob("*.py")) if not p.name.startswith("_")]


def _imported_modules(path: Path, package: str) -> set[str]:
    """Names of the modules of ``package`` that ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .folder import x
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import folder
                found |= {a.name for a in node.names}
            elif node.module and node.module.startswith(f"hcal.{package}."):
                found.add(node.module.split(".")[2])
            elif node.level == 2 and node.module and node.module.startswith(f"{package}."):
                found.add(node.module.split(".")[1])
    return found


@pytest.mark.parametrize("package", PLUGIN_PACKAGES)
def test_no_plugin_imports_another_plugin(package):
    names = {p.stem for p in _plugins(package)}
    for path in _plugins(package):
        others = (_imported_modules(path, package) & names) - {path.stem}
        assert not others, f"{package}/{path.name} imports the plug-in(s) {sorted(others)}; share code in a _module"


def test_the_check_can_fail(tmp_path):
    bad = tmp_path / "cifar10.py"
    bad.write_text("from .folder import load_image_folder\nfrom . import manifest\n")
    assert _imported_modules(bad, "datasets") == {"folder", "manifest"}


def test_no_module_is_over_300_lines_but_the_one_that_says_why():
    for path in sorted(SRC.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if path.name in LONGER:
            assert "over 300" in ast.get_docstring(ast.parse(path.read_text())), path
        else:
            assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines"
