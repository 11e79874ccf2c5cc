"""``python -m course_lib.doctor``: is this machine ready for the course? Says what to fix.

Checks the Python version, the pinned package versions, the device, the offline data, and that
every import in the notebooks resolves. Exit status 0 when all is well, 1 otherwise.
"""
from __future__ import annotations

import ast
import importlib.metadata as metadata
import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUPPORTED_PYTHON = ((3, 10), (3, 12))  # inclusive; the tests run on 3.11
SETUP_FIX = "run the README's setup (./course lab or ./course test) or `pip install -e '.[dev]'`"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_python() -> Check:
    low, high = SUPPORTED_PYTHON
    ok = low <= sys.version_info[:2] <= high
    return Check("python", ok, sys.version.split()[0],
                 "" if ok else f"use Python {low[0]}.{low[1]} to {high[0]}.{high[1]} (3.11 is tested)")


def pinned_requirements(extras: tuple[str, ...] = ("dev",)) -> dict[str, str]:
    """Exact pins ``name -> version`` that the installed course_lib declares (base + extras)."""
    try:
        requirements = metadata.requires("course_lib") or []
    except metadata.PackageNotFoundError:
        return {}
    pins = {}
    for line in requirements:
        spec, _, marker = line.partition(";")
        extra = re.search(r"extra\s*==\s*['\"](\w+)['\"]", marker)
        if extra and extra.group(1) not in extras:
            continue
        if "sys_platform" in marker and sys.platform not in marker:
            continue
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s,;]+)", spec)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def check_packages() -> list[Check]:
    pins = pinned_requirements()
    if not pins:
        return [Check("course_lib installed", False, "course_lib is not installed as a package", SETUP_FIX)]
    checks = []
    for name, want in sorted(pins.items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(Check(name, False, f"missing (pinned {want})", SETUP_FIX))
            continue
        same = have.split("+")[0] == want  # torch reports e.g. 2.13.0+cpu
        checks.append(Check(name, same, f"{have}" + ("" if same else f" (pinned {want})"),
                            "" if same else f"pip install '{name}=={want}'"))
    return checks


def check_device() -> Check:
    import torch

    from .utils import get_device

    device = get_device()
    detail = str(device)
    if device.type == "cuda":
        detail += f" ({torch.cuda.get_device_name(0)})"
    return Check("device", True, detail + "; every notebook also runs on the CPU")


def check_data() -> list[Check]:
    checks = []
    try:
        from pydoc_data.topics import topics
        size = sum(len(v) for v in topics.values())
        checks.append(Check("pydoc corpus", size > 300_000, f"{len(topics)} topics, {size:,} characters",
                            "" if size > 300_000 else "reinstall Python: pydoc_data is incomplete"))
    except ImportError:
        checks.append(Check("pydoc corpus", False, "pydoc_data is missing", "use a full CPython build"))
    data_dir = REPO / "data"
    checks.append(Check("data folder", data_dir.is_dir(), str(data_dir),
                        "" if data_dir.is_dir() else "run from a full clone of the course repository"))
    return checks


def notebook_imports(notebook: Path) -> set[str]:
    """Top-level module names imported by the code cells of a notebook."""
    names = set()
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # student cells may be unfinished; not the doctor's business
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def check_notebook_imports() -> list[Check]:
    notebooks = sorted((REPO / "notebooks").rglob("*.ipynb"))
    notebooks = [nb for nb in notebooks if ".ipynb_checkpoints" not in nb.parts]
    if not notebooks:
        return [Check("notebooks", False, "no notebooks found", "run from a full clone")]
    missing: dict[str, list[str]] = {}
    for nb in notebooks:
        for name in notebook_imports(nb):
            if name == "triton":  # optional: chapter 11 skips its GPU cells without it
                continue
            if importlib.util.find_spec(name) is None:
                missing.setdefault(name, []).append(nb.name)
    if not missing:
        return [Check("notebook imports", True, f"all imports of {len(notebooks)} notebooks resolve")]
    detail = "; ".join(f"{name} (in {', '.join(files)})" for name, files in sorted(missing.items()))
    return [Check("notebook imports", False, "missing: " + detail, SETUP_FIX)]


def run_checks() -> list[Check]:
    return [check_python(), *check_packages(), check_device(), *check_data(), *check_notebook_imports()]


def main() -> int:
    checks = run_checks()
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            print(f"{'':6}{'':<{width}}  fix: {c.fix}")
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed."
          + (" The course is ready." if not failed else " Fix the lines marked FAIL."))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
