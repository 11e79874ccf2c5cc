"""ruff (pyflakes F and bugbear B, B015 included: a comparison whose result is thrown away) is
clean on the library, the tests, the benchmarks and the scripts. The rules are in pyproject.toml."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PATHS = [p for p in ("course_lib", "tests", "benchmarks", "scripts", "deploy") if (REPO / p).exists()]


def _ruff() -> list[str]:
    exe = Path(sys.executable).with_name("ruff")
    if exe.exists():
        return [str(exe)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.skip("ruff is not installed: pip install -e '.[dev]'")


def test_ruff_is_clean():
    result = subprocess.run([*_ruff(), "check", "--output-format", "concise", *PATHS],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_catches_a_useless_comparison(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x):\n    x == 1\n    return x\n")
    result = subprocess.run([*_ruff(), "check", "--config", str(REPO / "pyproject.toml"), str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "B015" in result.stdout, result.stdout
