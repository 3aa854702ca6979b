"""The architecture rules CI enforces: import layers and file sizes.

The layers (README "Layout") are import-linter contracts in pyproject.toml, also run by
`make lint`; feature_repo/ is a Feast repository rather than a package, so its imports are
parsed here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from movierec.settings import PROJECT_ROOT

LINTED_PACKAGES = ("movierec", "models", "deployments", "benchmarks", "monitoring")
SOURCE_DIRS = (*LINTED_PACKAGES, "feature_repo")
MAX_LINES = 600
# The layers above models: the Feast repository definitions must not depend on them.
FEATURE_REPO_FORBIDDEN = frozenset({"deployments", "benchmarks", "monitoring"})


def _broken_contracts(report: str) -> str:
    """The part of import-linter's report that lists the violating imports."""
    marker = "Broken contracts"
    return report[report.index(marker) :] if marker in report else report


def test_import_layers_hold() -> None:
    """benchmarks | monitoring -> deployments -> models -> movierec, never upwards."""
    # `lint-imports` through this interpreter: its sys.path starts at the project root.
    command = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    result = subprocess.run(
        [sys.executable, "-c", command, "--no-cache", "--no-logo"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            "an import runs against the layers (pyproject.toml [tool.importlinter]; "
            f"`lint-imports` shows it too):\n{_broken_contracts(result.stdout + result.stderr)}",
            pytrace=False,
        )


def test_every_source_directory_is_a_regular_package() -> None:
    """import-linter skips namespace packages, so a missing __init__.py hides their imports."""
    missing = sorted(
        str(directory.relative_to(PROJECT_ROOT))
        for root in LINTED_PACKAGES
        for directory in {path.parent for path in (PROJECT_ROOT / root).rglob("*.py")}
        if not (directory / "__init__.py").is_file()
    )
    if missing:
        pytest.fail("directories without __init__.py:\n" + "\n".join(missing), pytrace=False)


def _imported_roots(path: Path) -> set[tuple[str, int]]:
    """Top-level packages ``path`` imports, with their line numbers (absolute imports only)."""
    roots: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add((node.module.split(".")[0], node.lineno))
    return roots


def test_import_parser_sees_every_absolute_import_form(tmp_path: Path) -> None:
    module = tmp_path / "repo.py"
    module.write_text(
        "import os, deployments.api\nfrom monitoring import x\nfrom . import local\n"
        "def f():\n    from benchmarks.load import run\n"
    )
    assert _imported_roots(module) == {
        ("os", 1),
        ("deployments", 1),
        ("monitoring", 2),
        ("benchmarks", 5),
    }


def test_feature_repo_imports_no_upper_layer() -> None:
    files = sorted((PROJECT_ROOT / "feature_repo").rglob("*.py"))
    assert files, "feature_repo/ has no Python file: is PROJECT_ROOT right?"
    violations = [
        f"{path.relative_to(PROJECT_ROOT)}:{line} imports {root}"
        for path in files
        for root, line in sorted(_imported_roots(path))
        if root in FEATURE_REPO_FORBIDDEN
    ]
    if violations:
        pytest.fail(
            "feature_repo/ imports an upper layer:\n" + "\n".join(violations), pytrace=False
        )


def test_no_source_file_over_600_lines() -> None:
    sizes = {
        path.relative_to(PROJECT_ROOT): len(path.read_text(encoding="utf-8").splitlines())
        for directory in SOURCE_DIRS
        for path in (PROJECT_ROOT / directory).rglob("*.py")
    }
    assert len(sizes) > 50, "too few source files found: is PROJECT_ROOT right?"
    too_long = [
        f"{path}: {lines} lines" for path, lines in sorted(sizes.items()) if lines > MAX_LINES
    ]
    if too_long:
        pytest.fail(f"over {MAX_LINES} lines, split them:\n" + "\n".join(too_long), pytrace=False)
