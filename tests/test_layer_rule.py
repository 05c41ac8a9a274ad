"""The layer rule of docs/architecture.md, the part a tool can check: no module outside
``pixelwise/cli/`` imports ``pixelwise.cli`` (the command line is the top layer), not even inside a
function, where an import hides from every other tool. The one exception is ``pixelwise/__main__.py``,
the ``python -m pixelwise`` entry point, which sits above the command line and only calls it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pixelwise"
CLI = PACKAGE / "cli"
ENTRY_POINT = PACKAGE / "__main__.py"


def _module_name(path: Path) -> list[str]:
    """``src/pixelwise/serve/models.py`` -> ``["pixelwise", "serve", "models"]`` (a package's
    ``__init__`` is the package itself)."""
    parts = ["pixelwise", *path.relative_to(PACKAGE).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(node: ast.AST, path: Path) -> list[str]:
    """Return the absolute module names an import statement (or ``importlib.import_module("X")``,
    ``__import__("X")``) brings in (``from X import Y`` gives ``X`` and ``X.Y``, since ``Y`` may be a
    submodule); relative imports are resolved from ``path``."""
    if isinstance(node, ast.Call):
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        first = node.args[0] if node.args else None
        named = isinstance(first, ast.Constant) and isinstance(first.value, str)
        return [first.value] if func in ("import_module", "__import__") and named else []
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = _module_name(path)
        package = package if path.name == "__init__.py" else package[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def cli_imports(source: str, path: Path) -> list[str]:
    """Return ``line: module`` for every import of ``pixelwise.cli`` in ``source``, the text of the
    module at ``path``."""
    tree = ast.parse(source, filename=str(path))
    found = []
    for node in ast.walk(tree):  # every statement, function bodies included
        names = _imported(node, path)
        if any(n == "pixelwise.cli" or n.startswith("pixelwise.cli.") for n in names):
            found.append(f"{node.lineno}: {names[0]}")
    return found


def test_only_the_command_line_imports_the_command_line():
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if CLI not in p.parents and p != ENTRY_POINT]
    assert len(modules) > 50
    breaches = {
        str(p.relative_to(PACKAGE)): found for p in modules if (found := cli_imports(p.read_text(encoding="utf-8"), p))
    }
    assert breaches == {}, f"modules below cli/ import pixelwise.cli: {breaches}"


@pytest.mark.parametrize("source", [
    "from pixelwise.cli.predict import class_summary",
    "def f():\n    from pixelwise.cli.ensemble import build_edeconvnet",
    "import pixelwise.cli.predict",
    "from pixelwise import cli",
    "from .. import cli",
    "from ..cli.predict import x",
    "def f():\n    from ..cli import predict",
    "import importlib\nimportlib.import_module('pixelwise.cli.predict')",
])
def test_the_check_sees_every_spelling(source):
    assert cli_imports(source, PACKAGE / "serve" / "app.py")  # relative imports resolve from pixelwise.serve


def test_the_check_sees_relative_imports_from_a_package():
    assert cli_imports("from . import cli", PACKAGE / "__init__.py")
    assert cli_imports("from .cli import main", PACKAGE / "__init__.py")
    assert cli_imports("from . import cli", PACKAGE / "serve" / "__init__.py") == []  # pixelwise.serve.cli


def test_the_check_lets_other_imports_pass():
    source = ("from pixelwise.client import x\nfrom . import client\nimport pixelwise.inference\n"
              "from pixelwise import models")
    assert cli_imports(source, PACKAGE / "serve" / "app.py") == []
