"""The package's layers hold: import-linter's contracts in pyproject.toml are kept, and a
wrong-way import in a copy of the package breaks them (the check can fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(source_root: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=source_root,
        check=False,
        timeout=120,
    )


def test_every_layer_imports_only_the_layers_below_it() -> None:
    result = _lint(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.replace("0 broken", "")


def _copy_with(tmp_path: Path, module: str, line: str) -> Path:
    shutil.copytree(ROOT / "src" / "tillflow", tmp_path / "tillflow")
    target = tmp_path / "tillflow" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return tmp_path


def test_the_engine_importing_the_shop_breaks_the_layers(tmp_path: Path) -> None:
    copy = _copy_with(tmp_path, "engine/types.py", "import tillflow.shop.sale.events")
    result = _lint(copy)
    assert result.returncode != 0
    assert "tillflow.engine.types -> tillflow.shop.sale.events" in result.stdout


def test_a_context_importing_the_http_layer_breaks_the_layers(tmp_path: Path) -> None:
    copy = _copy_with(tmp_path, "shop/inventory/stock.py", "import tillflow.http.problems")
    result = _lint(copy)
    assert result.returncode != 0
    assert "tillflow.shop.inventory.stock -> tillflow.http.problems" in result.stdout


def test_sale_importing_the_report_breaks_the_contexts_layers(tmp_path: Path) -> None:
    copy = _copy_with(tmp_path, "shop/sale/events.py", "import tillflow.shop.reporting.rows")
    result = _lint(copy)
    assert result.returncode != 0
    assert "tillflow.shop.sale.events -> tillflow.shop.reporting.rows" in result.stdout
