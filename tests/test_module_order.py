"""The library is in chapter order: every course_lib module imports only modules of its own or
earlier chapters, as the table in course_lib/__init__.py says, and imports form no cycle.

The table is parsed from the package docstring, so the docstring and the code cannot drift apart.
"""
import ast
import re
import subprocess
import sys
from pathlib import Path

import course_lib

PACKAGE = Path(course_lib.__file__).resolve().parent
# function-level imports of a later module that the design allows (the lazy backend dispatch)
LAZY_ALLOWED = {("attention", "kernels")}


def order_from_docstring() -> tuple[dict, set]:
    """{top-level module: rank} and the set of frozensets of siblings (the '|' groups)."""
    ranks, siblings, rank = {}, set(), 0
    lines = [line for line in course_lib.__doc__.splitlines() if line.startswith("    ")]
    for line in lines:
        table = re.split(r"\s{2,}", line.strip())[0]        # drop the comment after 2+ spaces
        for chain in table.split("<"):
            group = [name.strip() for name in chain.split("|")]
            for name in group:
                ranks[name] = rank
            if len(group) > 1:
                siblings.add(frozenset(group))
            rank += 1
    return ranks, siblings


def top_module(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def course_imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported top-level course module, at module level?, line) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package_parts = path.relative_to(PACKAGE).parent.parts   # () for course_lib/x.py
    found = []

    def visit(node, top_level):
        for child in ast.iter_child_nodes(node):
            inside = top_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: resolve against this file's package
                    base = list(package_parts[: len(package_parts) - (child.level - 1)])
                    target = base + (child.module.split(".") if child.module else [])
                    if not target:  # "from . import x" at the package root
                        target = [child.names[0].name]
                    names = ["course_lib." + ".".join(target)]
                    if child.module is None:
                        names = ["course_lib." + ".".join(base + [a.name]) for a in child.names]
                else:
                    names = [child.module or ""]
            for name in names:
                if name.startswith("course_lib."):
                    found.append((name.split(".")[1], top_level, child.lineno))
            visit(child, inside)

    visit(tree, True)
    return found


def all_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_is_in_the_table():
    ranks, _ = order_from_docstring()
    tops = {top_module(p) for p in all_modules()} - {"__init__"}
    missing = sorted(tops - set(ranks))
    assert not missing, f"course_lib modules not in the order table of course_lib/__init__.py: {missing}"
    stale = sorted(set(ranks) - tops)
    assert not stale, f"the order table names modules that do not exist: {stale}"


def violations(me: str, imports: list[tuple[str, bool, int]]) -> list[str]:
    """What is wrong with module ``me`` importing ``imports`` [(module, at module level?, line)]."""
    ranks, siblings = order_from_docstring()
    wrong = []
    for other, top_level, line in imports:
        if other == me:
            continue
        where = f"course_lib/{me}:{line} imports {other}"
        if any(me in group and other in group for group in siblings):
            wrong.append(f"{where}: siblings ({me} | {other}) do not import each other")
        elif ranks[other] >= ranks[me] and (top_level or (me, other) not in LAZY_ALLOWED):
            wrong.append(f"{where}: a {'module-level' if top_level else 'lazy'} import of a later module")
    return wrong


def test_no_module_imports_a_later_chapter():
    wrong = []
    for path in all_modules():
        if top_module(path) != "__init__":
            wrong += violations(top_module(path), course_imports(path))
    assert not wrong, "imports against the chapter order:\n" + "\n".join(wrong)


def test_the_check_can_fail():
    assert violations("seq2seq", [("attention", True, 1)])          # 03 importing 05
    assert violations("attention", [("kernels", True, 1)])          # 05 loading 11 at import time
    assert not violations("attention", [("kernels", False, 1)])     # the lazy dispatch: allowed
    assert violations("transformer", [("kernels", False, 1)])       # lazy, but not allowed
    assert violations("gpt", [("bert", True, 1)])                   # siblings
    assert not violations("transformer", [("attention", True, 1), ("utils", True, 2)])


def test_module_level_imports_form_no_cycle():
    graph = {}
    for path in all_modules():
        rel = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        rel = rel.removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        deps = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and not node.level \
                    and node.module.startswith("course_lib"):
                deps.add(node.module)
            elif isinstance(node, ast.ImportFrom) and node.level:
                base = rel.split(".")[: -node.level] if not path.name == "__init__.py" else \
                    rel.split(".")[: len(rel.split(".")) - node.level + 1]
                deps.add(".".join(base + ([node.module] if node.module else [])))
        graph[rel] = {d for d in deps if d != rel}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in graph.get(node, ()):
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack + [node, dep]))
            if dep in graph and dep not in state:
                visit(dep, stack + [node])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [])


def test_importing_attention_loads_neither_kernels_nor_triton():
    code = ("import sys, course_lib.transformer, course_lib.attention_rnn\n"
            "assert 'course_lib.kernels' not in sys.modules, 'kernels loaded'\n"
            "assert 'triton' not in sys.modules, 'triton loaded'\n"
            "import course_lib.kernels\n"
            "assert 'triton' not in sys.modules, 'triton loaded by course_lib.kernels'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_kernels_flash_attention_is_the_function():
    code = ("import sys, inspect\n"
            "from course_lib.kernels import flash_attention\n"
            "assert inspect.isfunction(flash_attention), type(flash_attention)\n"
            "import course_lib.kernels as k\n"
            "assert k.flash_attention is flash_attention\n"
            "assert 'causal' in inspect.signature(flash_attention).parameters\n")
    subprocess.run([sys.executable, "-c", code], check=True)
