"""Reading and repairing exercise notebooks before they are graded (no student code runs here).

- the nbgrader metadata reader every grading module uses (:func:`nbgrader_meta`, :func:`source`);
- :func:`sanitize`: a hand-in rebuilt on the cells of the release, so that ordinary edits (a
  copy-pasted or deleted cell, a test cell's flags or points changed) are graded as if untouched;
- :func:`definitions_only`: what of an answer cell is run during grading (definitions, imports and
  constants; no statement that runs code when the cell runs).
"""
from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"


def nbgrader_meta(cell: Any) -> dict:
    """The ``nbgrader`` metadata of a cell ({} when it has none)."""
    meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
    value = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
    return value if isinstance(value, dict) else {}


def source(cell: Any) -> str:
    """A cell's source as one string (nbformat allows a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def is_test(cell: Any) -> bool:
    return bool(nbgrader_meta(cell).get("grade")) and cell.get("cell_type") == "code"


def exercise_key(grade_id: str) -> str:
    """``ex2_rnn_forward_tests`` -> ``ex2``; other ids stand alone."""
    m = re.match(r"(ex\d+)", grade_id or "")
    return m.group(1) if m else grade_id


def strip_hidden(text: str) -> str:
    """``text`` without the lines between the hidden-test markers (as the student version has it)."""
    lines, keep = [], True
    for line in text.split("\n"):
        if HIDDEN_BEGIN in line:
            keep = False
        elif HIDDEN_END in line:
            keep = True
        elif keep:
            lines.append(line)
    return "\n".join(lines)


# -- the sanitizer ---------------------------------------------------------------------------------

@dataclass
class Repairs:
    """What :func:`sanitize` changed, in words a learner and an instructor can read."""
    restored: list[str] = field(default_factory=list)   # locked cells edited or deleted, put back
    dropped: list[str] = field(default_factory=list)    # copies of cells and unknown grade cells removed
    missing_answers: list[str] = field(default_factory=list)  # answer cells deleted (graded as unanswered)
    metadata: list[str] = field(default_factory=list)   # flags or points restored

    def notes(self) -> list[str]:
        out = []
        if self.restored:
            out.append("locked cells edited or deleted, graded as the originals: " + ", ".join(self.restored))
        if self.dropped:
            out.append("cells removed before grading (copies of locked cells, or cells with grade "
                       "metadata the release does not have): " + ", ".join(self.dropped))
        if self.missing_answers:
            out.append("answer cells missing, graded as unanswered: " + ", ".join(self.missing_answers))
        if self.metadata:
            out.append("nbgrader flags or points changed, restored from the release: " + ", ".join(self.metadata))
        return out


_FLAGS = ("grade", "solution", "locked", "task", "points", "checksum", "schema_version", "grade_id")


def sanitize(nb: Any, reference: Any) -> Repairs:
    """Rebuild ``nb`` (in place) on the cells of ``reference`` (the release, or the source).

    Every cell of ``reference`` appears once, in its order, with its metadata (flags, points,
    checksum). Locked cells take the reference's source; answer cells take the source of the first
    hand-in cell with the same ``grade_id`` and type (the release's stub when there is none).
    Other hand-in cells with nbgrader metadata (copies, unknown ids) are dropped; cells without
    nbgrader metadata (a learner's scratch cells) are kept after the reference cell they followed.
    """
    repairs = Repairs()
    ref_cells = list(reference["cells"])
    ref_by_id = {nbgrader_meta(c).get("grade_id"): c for c in ref_cells if nbgrader_meta(c).get("grade_id")}
    answers: dict[str, Any] = {}
    seen: set[str] = set()
    extras: dict[str | None, list] = {}
    last: str | None = None
    for cell in nb.get("cells", []):
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id") if isinstance(meta.get("grade_id"), str) else None
        has_meta = "nbgrader" in cell.get("metadata", {})
        ref = ref_by_id.get(gid)
        if ref is not None and gid not in seen and cell.get("cell_type") == ref.get("cell_type"):
            seen.add(gid)
            ref_meta = nbgrader_meta(ref)
            if any(meta.get(k) != ref_meta.get(k) for k in ("grade", "solution", "locked", "points")):
                repairs.metadata.append(gid)
            if ref_meta.get("solution") and not ref_meta.get("locked"):
                answers[gid] = cell
            elif source(cell) != source(ref):
                repairs.restored.append(gid)
            last = gid
        elif has_meta:
            repairs.dropped.append(gid or f"a cell without grade_id after `{last or 'the start'}`")
        else:
            extras.setdefault(last, []).append(cell)
    cells = list(extras.get(None, []))
    for ref in ref_cells:
        gid = nbgrader_meta(ref).get("grade_id")
        cell = copy.deepcopy(ref)
        if gid in answers:
            cell["source"] = source(answers[gid])
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
        elif gid and gid not in seen:
            meta = nbgrader_meta(ref)
            if meta.get("solution") and not meta.get("locked"):
                repairs.missing_answers.append(gid)
            else:
                repairs.restored.append(gid)
        cells.append(cell)
        cells.extend(extras.get(gid, []) if gid else [])
    nb["cells"] = cells
    return repairs


# -- definitions only --------------------------------------------------------------------------------

def defined_names(sources: Iterable[str]) -> set[str]:
    """Names that code written by a learner binds (functions, classes, assignments)."""
    names: set[str] = set()
    for text in sources:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _safe(node: ast.AST | None, learner: set[str]) -> bool:
    """True for an expression that only names things, or calls a library (never a learner's) callable."""
    if node is None:
        return True
    if isinstance(node, (ast.Constant, ast.Name)):
        return True
    if isinstance(node, ast.Attribute):
        return _safe(node.value, learner)
    if isinstance(node, ast.Subscript):
        return _safe(node.value, learner) and _safe(node.slice, learner)
    if isinstance(node, ast.Slice):
        return all(_safe(n, learner) for n in (node.lower, node.upper, node.step))
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_safe(n, learner) for n in node.elts)
    if isinstance(node, ast.Dict):
        return all(_safe(n, learner) for n in [*node.keys, *node.values] if n is not None)
    if isinstance(node, ast.UnaryOp):
        return _safe(node.operand, learner)
    if isinstance(node, ast.BinOp):
        return _safe(node.left, learner) and _safe(node.right, learner)
    if isinstance(node, ast.Starred):
        return _safe(node.value, learner)
    if isinstance(node, ast.Call):
        root = _root(node.func)
        return (root is not None and root not in learner and _safe(node.func, learner)
                and all(_safe(a, learner) for a in node.args)
                and all(_safe(k.value, learner) for k in node.keywords))
    return False


def _safe_signature(node: ast.FunctionDef | ast.AsyncFunctionDef, learner: set[str]) -> bool:
    a = node.args
    annotations = [x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if x]
    decorators_ok = all(_root(d) not in learner and _safe(d, learner) for d in node.decorator_list)
    return (decorators_ok and all(_safe(d, learner) for d in [*a.defaults, *a.kw_defaults] if d is not None)
            and all(_safe(x, learner) for x in [*annotations, node.returns]))


def _allowed(node: ast.stmt, learner: set[str], local_modules: set[str], in_class: bool = False) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return _safe_signature(node, learner)
    if isinstance(node, ast.ClassDef):
        return (not node.keywords and all(_root(b) not in learner and _safe(b, learner) for b in node.bases)
                and all(_root(d) not in learner and _safe(d, learner) for d in node.decorator_list)
                and all(_allowed(s, learner, local_modules, in_class=True) for s in node.body))
    if isinstance(node, ast.Import):
        return not any(alias.name.split(".")[0] in local_modules for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] not in local_modules
    if isinstance(node, ast.Assign):
        return all(isinstance(t, ast.Name) for t in node.targets) and _safe(node.value, learner)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and _safe(node.value, learner) and _safe(node.annotation, learner)
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant)  # a docstring or a bare constant
    return isinstance(node, ast.Pass)


def _first_line(node: ast.stmt) -> int:
    """The first line of a statement, its decorators included."""
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])


@dataclass
class Definitions:
    """What of a learner's cell runs during grading."""
    code: str
    dropped: list[tuple[int, str]] = field(default_factory=list)  # (line, first line of the statement)

    def note(self) -> str:
        if not self.dropped:
            return ""
        shown = "; ".join(f"line {line}: `{text}`" for line, text in self.dropped[:5])
        more = f" and {len(self.dropped) - 5} more" if len(self.dropped) > 5 else ""
        return (f"[grading] Only definitions (def, class, import, constants) of this cell run during "
                f"grading; not run: {shown}{more}. Put work inside your functions.\n")


def definitions_only(text: str, learner: set[str] = frozenset(), local_modules: set[str] = frozenset()) -> Definitions:
    """Keep the top-level statements of ``text`` that only define things; report the others.

    ``learner`` is the set of names the learner's code binds (a decorator, base class or default
    value that calls one would run the learner's code when the cell runs); ``local_modules`` the
    module names that would import a file handed in beside the notebook. IPython syntax (magics,
    ``!commands``) becomes calls and is dropped; a cell that does not parse raises its SyntaxError.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError:
        try:
            from IPython.core.inputtransformer2 import TransformerManager
            text = TransformerManager().transform_cell(text)
            tree = ast.parse(text)
        except Exception:  # still not Python: let the kernel report the learner's SyntaxError
            return Definitions(code=f"compile({text!r}, 'your cell', 'exec')")
    kept, dropped = [], []
    for node in tree.body:
        if _allowed(node, set(learner), set(local_modules)):
            kept.append(node)
        else:
            first = ast.get_source_segment(text, node) or ast.unparse(node)
            dropped.append((_first_line(node), first.split("\n")[0][:120]))
    if not dropped:
        return Definitions(code=text)
    # blank the dropped statements' lines, so that line numbers in tracebacks stay the learner's
    lines = text.split("\n")
    for node in tree.body:
        if node not in kept:
            for i in range(_first_line(node) - 1, node.end_lineno):
                lines[i] = ""
    code = "\n".join(lines)
    try:
        again = ast.parse(code)
        ok = all(_allowed(n, set(learner), set(local_modules)) for n in again.body)
    except SyntaxError:
        ok = False
    if not ok:  # statements sharing a line: fall back to the kept statements alone
        code = ast.unparse(ast.Module(body=kept, type_ignores=[]))
    return Definitions(code=code, dropped=dropped)
