"""python -m course_lib.doctor reports on this environment and says what to fix."""
import json
import subprocess
import sys

from course_lib import doctor


def test_doctor_passes_in_the_course_environment():
    result = subprocess.run([sys.executable, "-m", "course_lib.doctor"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The course is ready." in result.stdout and "torch" in result.stdout


def test_doctor_names_a_missing_import_and_the_fix(tmp_path, monkeypatch):
    notebook = tmp_path / "notebooks" / "99_demo.ipynb"
    notebook.parent.mkdir()
    cells = [{"cell_type": "code", "source": ["import course_lib\n", "from not_a_real_pkg import x\n"],
              "metadata": {}, "outputs": [], "execution_count": None}]
    notebook.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    monkeypatch.setattr(doctor, "REPO", tmp_path)
    [check] = doctor.check_notebook_imports()
    assert not check.ok and "not_a_real_pkg (in 99_demo.ipynb)" in check.detail and "pip install" in check.fix


def test_doctor_flags_a_wrong_version(monkeypatch):
    monkeypatch.setattr(doctor, "pinned_requirements", lambda extras=("dev",): {"torch": "0.0.1"})
    [check] = doctor.check_packages()
    assert not check.ok and "pinned 0.0.1" in check.detail and "pip install 'torch==0.0.1'" in check.fix
