"""Execute an exercise notebook for grading: sandboxed kernels, one per exercise, capped output.

Used by nbgrader's autograde (``course_lib.grading.nbgrader_plugins.GradingExecute``) and by the
self-check (``python -m course_lib.grade``), so both grade the same way:

- each exercise runs in a kernel of its own (``isolate="exercise"``): the locked cells, then the
  definitions of every answer cell (:func:`~course_lib.grading.notebook.definitions_only`), then
  that exercise's test cells. A kernel that dies loses only the cell that killed it: a new kernel
  takes over;
- the test cells (the release's, restored by the sanitizer and nbgrader) run in *this* process, not
  in the kernel: the learner's names they use are proxies that call the learner's functions in the
  kernel and get back only plain data (:mod:`course_lib.grading.remote`). Whatever the learner's code
  does to its interpreter (patching the checks, walking up to the checker's frame, hooking imports,
  an IPython input transformer) happens where no check runs;
- a cell is stopped after ``timeout`` seconds: interrupted, then killed if it ignores the
  interrupt; it gets a ``CellTimeoutError`` and grading goes on;
- a lost IOPub message or a slow kernel never fails the notebook: what arrived is kept;
- output is capped per cell in characters (``output_limit``), with a note saying how much was cut;
  bytes written to the file descriptors directly count only as far as the kernel forwards them
  before the cell ends (what arrives later belongs to no cell and is dropped);
- every test cell that did not run to the end carries an error output, so it scores 0.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Collection

from . import sandbox as _sandbox
from .notebook import defined_names, definitions_only, exercise_key, is_test, nbgrader_meta, source

DEFAULT_TIMEOUT = 120        # seconds per cell, as nbgrader_config.py sets for autograde
OUTPUT_LIMIT = 20_000        # characters of output kept per cell
IOPUB_GRACE = 5.0            # seconds to wait for outputs after the kernel replied
INTERRUPT_GRACE = 5.0        # seconds a cell has to stop after an interrupt before its kernel is killed
PRESTART = 2                 # kernels of the next exercises started ahead (they mostly import torch)
MAX_RESTARTS = 8             # kernels started again after deaths, per notebook

@dataclass
class RunInfo:
    """What happened while running a notebook, beyond the cells' outputs."""
    sandboxed: bool
    kernels: int = 0
    timeouts: list[str] = field(default_factory=list)     # grade ids (or cell numbers) stopped
    deaths: list[str] = field(default_factory=list)       # cells whose kernel died
    status: dict[int, str] = field(default_factory=dict)  # cell index -> ok, error, timeout, dead, missing
    notes: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _label(cell: Any, index: int) -> str:
    return nbgrader_meta(cell).get("grade_id") or f"cell {index + 1}"


def _error(ename: str, evalue: str) -> dict:
    import nbformat
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class _Outputs:
    """The outputs of one cell, capped at ``limit`` characters (errors are always kept, shortened)."""

    def __init__(self, limit: int):
        self.limit, self.items, self.size, self.cut = limit, [], 0, 0

    def add(self, msg: dict) -> None:
        import nbformat
        if msg["msg_type"] == "clear_output":
            self.items = [o for o in self.items if o.get("output_type") == "error"]
            return
        out = nbformat.v4.output_from_msg(msg)
        if out.output_type == "error":
            out.evalue = out.evalue[:4000]
            out.traceback = [line[:2000] for line in out.traceback[-40:]]
            self.items.append(out)
            return
        if out.output_type == "stream":
            self.stream(out.name, out.text)
            return
        room = self.limit - self.size
        n = sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in out.get("data", {}).values())
        if n > room:
            self.cut += n
            return
        self.size += n
        self.items.append(out)

    def stream(self, name: str, text: str) -> None:
        import nbformat
        room = self.limit - self.size
        if len(text) > room:
            self.cut += len(text) - max(room, 0)
            text = text[:max(room, 0)]
        if not text:
            return
        self.size += len(text)
        last = self.items[-1] if self.items else None
        if last is not None and last.get("output_type") == "stream" and last.name == name:
            last.text += text
        else:
            self.items.append(nbformat.v4.new_output("stream", name=name, text=text))

    def write(self, text: str) -> int:
        """As a file: what the test cell prints in the grader's process."""
        self.stream("stdout", str(text))
        return len(text)

    def flush(self) -> None:
        pass

    def finish(self) -> list:
        import nbformat
        if self.cut:
            self.items.append(nbformat.v4.new_output(
                "stream", name="stderr",
                text=f"\n[grading] output cut: {self.cut:,} more characters of output were not kept "
                     f"(the limit is {self.limit:,} characters per cell).\n"))
        return self.items


class _Kernel:
    """One grading kernel in a fresh working copy of the hand-in."""

    def __init__(self, workdir: Path, hide: list, sandbox: bool, startup_timeout: float):
        from jupyter_client import KernelManager

        self.root = Path(tempfile.mkdtemp(prefix="cg-", dir="/tmp" if os.path.isdir("/tmp") else None))
        self.work = self.root / "work"
        shutil.copytree(workdir, self.work, symlinks=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        private = self.root / "k"
        private.mkdir()
        self.km = KernelManager(transport="ipc", ip=str(private / "s"), connection_file=str(private / "c.json"))
        self.km._kernel_spec = _sandbox.kernel_spec(self.work, private, hide, sandbox=sandbox)
        self.km.start_kernel(cwd=str(self.work), stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.startup_timeout, self.ready, self.count, self.pending = startup_timeout, False, 0, []
        # the kernel's remote.serve connects here to answer the test cells run in this process
        self.socket_path = str(private / "r.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket_path)
        self.listener.listen(1)

    def wait(self) -> "_Kernel":
        """Wait until the kernel answers (it was started, and imports torch, in the background)."""
        if not self.ready:
            try:
                self.kc.wait_for_ready(timeout=self.startup_timeout)
            except BaseException:
                self.close()
                raise
            self.ready = True
        return self

    def alive(self) -> bool:
        try:
            return bool(self.km.is_alive())
        except Exception:
            return False

    def run(self, code: str, timeout: float, limit: int, silent: bool = False) -> tuple[str, list, dict]:
        """Run ``code``; return (status, outputs, timing): status is ok, error, timeout or dead."""
        outputs, timing = _Outputs(limit), {"iopub.execute_input": _now()}
        status = self.collect(self.submit(code, silent), timeout, outputs)
        timing["shell.execute_reply"] = _now()
        return status, outputs.finish(), timing

    def submit(self, code: str, silent: bool = False) -> str:
        return self.kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False,
                               stop_on_error=False)

    def _iopub(self, timeout: float) -> dict:
        return self.pending.pop(0) if self.pending else self.kc.get_iopub_msg(timeout=timeout)

    def collect(self, msg_id: str, timeout: float, outputs: _Outputs, errors: bool = True) -> str:
        """Wait for the execution ``msg_id`` to end, adding its outputs to ``outputs`` (without error
        outputs unless ``errors``); return its status: ok, error, timeout or dead."""
        deadline, idle, reply, reply_at, status = time.monotonic() + timeout, False, None, 0.0, None
        interrupted_at, failed = None, False
        while not (idle and reply is not None):
            now = time.monotonic()
            if reply is not None and now > reply_at + IOPUB_GRACE:
                break  # an IOPub message was lost: keep what arrived
            if now > deadline and interrupted_at is None:
                status, interrupted_at = "timeout", now
                try:
                    self.km.interrupt_kernel()
                except Exception:
                    pass
            if interrupted_at is not None and now > interrupted_at + INTERRUPT_GRACE:
                self.close()  # it ignored the interrupt
                break
            try:
                msg = self._iopub(0.2)
            except queue.Empty:
                if reply is None:
                    try:
                        shell = self.kc.get_shell_msg(timeout=0)
                        if shell["parent_header"].get("msg_id") == msg_id:
                            reply, reply_at = shell, time.monotonic()
                    except queue.Empty:
                        pass
                if not self.alive():
                    status = status or "dead"
                    break
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"].get("execution_state") == "idle":
                idle = True
                if reply is None:
                    try:
                        reply = self.kc.get_shell_msg(timeout=IOPUB_GRACE)
                    except queue.Empty:
                        reply = {}
                    reply_at = time.monotonic()
            elif kind == "error":
                failed = True
                if errors:
                    outputs.add(msg)
            elif kind in ("stream", "display_data", "execute_result", "clear_output"):
                outputs.add(msg)
        if reply:
            self.count = reply.get("content", {}).get("execution_count", self.count) or self.count
        return status or ("error" if failed else "ok")

    def accept(self, msg_id: str, deadline: float):
        """The connection of the kernel's :func:`course_lib.grading.remote.serve`, started by the
        execution ``msg_id``; None if that execution ended, the kernel died or ``deadline`` passed."""
        self.listener.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                conn, _ = self.listener.accept()
                conn.settimeout(None)
                return conn
            except (socket.timeout, TimeoutError):
                pass
            try:
                while True:
                    msg = self.kc.get_iopub_msg(timeout=0)
                    self.pending.append(msg)
                    if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" \
                            and msg["content"].get("execution_state") == "idle":
                        return None
            except queue.Empty:
                pass
            if not self.alive():
                return None
        return None

    def close(self) -> None:
        for step in (lambda: self.listener.close(), lambda: self.kc.stop_channels(), lambda: self.km.shutdown_kernel(now=True),
                     lambda: self.km.cleanup_resources()):
            try:
                step()
            except Exception:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


SERVE = "import course_lib.grading.remote as _cg\n_cg.serve({path!r})\ndel _cg"


def _failure(exc: BaseException, code: str, filename: str) -> dict:
    """The error output of a test cell that ``exc`` ended, pointing at the line of the test cell."""
    import traceback as tb
    import nbformat
    ename, evalue = type(exc).__name__, str(exc)
    lines = ["Traceback (most recent call last):"]
    for frame in tb.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            text = code.splitlines()[frame.lineno - 1].strip() if 0 < frame.lineno <= len(code.splitlines()) else ""
            lines.append(f"  test cell, line {frame.lineno}: {text}")
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue[:4000],
                                  traceback=[lines[0], *lines[1:][-2:], f"{ename}: {evalue[:4000]}"])


def _run_test(kernel: _Kernel, code: str, timeout: float, limit: int) -> tuple[str, list, dict]:
    """Run a test cell in this process, its learner functions called in ``kernel``
    (:mod:`course_lib.grading.remote`); return (status, outputs, timing) as :meth:`_Kernel.run` does."""
    from . import remote as _remote   # imports torch: only where a test runs

    outputs, timing = _Outputs(limit), {"iopub.execute_input": _now()}
    deadline = time.monotonic() + timeout
    msg_id = kernel.submit(SERVE.format(path=kernel.socket_path))
    conn = kernel.accept(msg_id, deadline)
    status, problem, interrupt = None, None, False
    if conn is None:
        status = "timeout" if time.monotonic() >= deadline else None
        problem = "the grading kernel did not answer the test (the course's grading module could not start there)"
    else:
        link = _remote.GraderLink(conn, deadline)
        exc = _remote.run_cell(code, link, outputs)
        try:
            link.done()
        except _remote.Stop:
            pass
        conn.close()
        if isinstance(exc, _remote.Stop):
            status, problem, interrupt = exc.status, str(exc), exc.status != "dead"
        elif exc is not None:
            outputs.items.append(_failure(exc, code, _remote.TEST_CELL))
            status = "error"
    # out of time, or the kernel broke the protocol: interrupt it now (serve ends, the kernel lives on)
    wait = 0 if interrupt or status == "timeout" else max(deadline - time.monotonic(), 0) + IOPUB_GRACE
    ended = kernel.collect(msg_id, wait, outputs, errors=False) if kernel.alive() else "dead"
    if ended in ("timeout", "dead"):
        status = ended if status in (None, "dead", "timeout") else status
    elif status == "dead":      # the connection broke but the kernel lives: the learner's code closed it
        status = "error"
    if problem and status in (None, "error"):
        status = "error"
        outputs.items.append(_error("GradingProtocolError", problem))
    timing["shell.execute_reply"] = _now()
    return status or "ok", outputs.finish(), timing


def _groups(nb: Any, isolate: str) -> list[list[int]]:
    """The cells each kernel runs, by index: one list per exercise (or one for the notebook)."""
    cells = nb["cells"]
    code = [i for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    tests = [i for i in code if is_test(cells[i])]
    if isolate == "notebook" or not tests:
        return [code]
    keys: list[str] = []
    for i in tests:
        key = exercise_key(nbgrader_meta(cells[i]).get("grade_id", ""))
        if key not in keys:
            keys.append(key)
    plans = []
    for n, key in enumerate(keys):
        mine = [i for i in tests if exercise_key(nbgrader_meta(cells[i]).get("grade_id", "")) == key]
        end = max(mine) if n < len(keys) - 1 else len(cells)
        plans.append([i for i in code if i <= end and (not is_test(cells[i]) or i in mine)])
    return plans


def run_notebook(nb: Any, workdir: str | Path, *, timeout: float = DEFAULT_TIMEOUT,
                 startup_timeout: float = 120, output_limit: int = OUTPUT_LIMIT, sandbox: str = "auto",
                 hide: list = (), isolate: str = "exercise", in_kernel: Collection[str] = (),
                 log: Callable[[str], None] | None = None) -> RunInfo:
    """Execute ``nb`` (changed in place: outputs, execution counts, timing) as described above.

    ``workdir`` is copied for every kernel (the hand-in's working copy; nothing is written back).
    ``sandbox``: "auto" (bwrap when it works, else unsandboxed with a loud warning), "bwrap" (refuse
    to run without it) or "none". ``hide``: folders the kernel must not see (the course directory,
    the exchange). ``isolate``: "exercise" (a kernel per exercise) or "notebook". Test cells run in
    this process, calling the learner's functions in the kernel (:mod:`course_lib.grading.remote`),
    except those whose grade id is in ``in_kernel`` (test cells whose source is not the release's,
    which the self-check scores 0 anyway: they run in the sandboxed kernel, never here).
    """
    if sandbox not in ("auto", "bwrap", "none"):
        raise ValueError(f"sandbox: expected 'auto', 'bwrap' or 'none', got {sandbox!r}")
    if isolate not in ("exercise", "notebook"):
        raise ValueError(f"isolate: expected 'exercise' or 'notebook', got {isolate!r}")
    use = sandbox != "none" and _sandbox.available()
    if sandbox == "bwrap" and not use:
        raise RuntimeError("sandbox: 'bwrap' was asked for but bubblewrap is not available here")
    info = RunInfo(sandboxed=use)
    if not use and sandbox == "auto":
        info.notes.append(_sandbox.NOT_SANDBOXED)
        if log:
            log(_sandbox.NOT_SANDBOXED)
    workdir = Path(workdir)
    cells = nb["cells"]
    learner_cells = [c for c in cells if c.get("cell_type") == "code" and not nbgrader_meta(c).get("locked")]
    learner = defined_names(source(c) for c in learner_cells)
    local = {p.stem if p.suffix == ".py" else p.name for p in workdir.iterdir()
             if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())} if workdir.is_dir() else set()
    code_of: dict[int, str] = {}
    notes_of: dict[int, str] = {}
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        if nbgrader_meta(cell).get("locked"):
            code_of[i] = source(cell)
        else:
            defs = definitions_only(source(cell), learner, local)
            code_of[i], notes_of[i] = defs.code, defs.note()
    plans = _groups(nb, isolate)
    # each cell's outputs come from one kernel: that of the exercise whose tests come next
    group_of = {i: n for n, plan in enumerate(plans) for i in plan if is_test(cells[i])}
    tests = sorted(group_of)
    owner = {}
    for plan in plans:
        for i in plan:
            after = [t for t in tests if t >= i]
            owner[i] = group_of[after[0]] if after else len(plans) - 1
    done: dict[int, tuple] = {}
    restarts = 0
    def start() -> _Kernel:
        info.kernels += 1
        return _Kernel(workdir, list(hide), use, startup_timeout)

    upcoming: dict[int, _Kernel] = {}   # kernels of the next exercises, starting in the background
    for n, plan in enumerate(plans):
        kernel, position = None, 0
        while position < len(plan):
            if kernel is None:
                try:
                    kernel = upcoming.pop(n, None) if position == 0 else None
                    kernel = (kernel or start()).wait()
                    for m in range(n + 1, min(n + 1 + PRESTART, len(plans))):
                        if m not in upcoming:
                            upcoming[m] = start()
                    for j in plan[:position]:  # a new kernel after a death: the definitions again
                        if not is_test(cells[j]):
                            kernel.run(code_of[j], timeout=timeout, limit=1000)
                except Exception as exc:  # the kernel would not start: these cells cannot run
                    for j in plan[position:]:
                        done.setdefault(j, ("dead", [_error("KernelStartError", f"the grading kernel did not "
                                                            f"start ({type(exc).__name__}: {exc})")], {}))
                    break
            i = plan[position]
            if is_test(cells[i]) and _label(cells[i], i) not in in_kernel:
                status, outputs, timing = _run_test(kernel, code_of[i], timeout, output_limit)
            else:
                status, outputs, timing = kernel.run(code_of[i], timeout=timeout, limit=output_limit)
            if status == "timeout":
                info.timeouts.append(_label(cells[i], i))
                outputs.append(_error("CellTimeoutError", f"the cell was stopped after {timeout:g} s, the time "
                                      "limit for one cell"))
            elif status == "dead":
                info.deaths.append(_label(cells[i], i))
                outputs.append(_error("DeadKernelError", "the kernel died while running this cell (a crash, "
                                      "os._exit or running out of memory); the other exercises ran in kernels "
                                      "of their own"))
            if owner.get(i) == n:
                done[i] = (status, outputs, timing, kernel.count)
            position += 1
            if not kernel.alive():
                kernel.close()
                kernel = None
                restarts += 1
                if restarts > MAX_RESTARTS:
                    for j in plan[position:]:
                        done.setdefault(j, ("dead", [_error("DeadKernelError", "not run: too many kernels "
                                                            "died in this notebook")], {}))
                    break
        if kernel is not None:
            kernel.close()
    for kernel in upcoming.values():
        kernel.close()
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        status, outputs, timing, *count = done.get(i, ("missing", [], {}))
        info.status[i] = status
        if status == "missing" and is_test(cell):
            outputs = [_error("NotRunError", "this test cell was not run")]
        note = notes_of.get(i)
        if note and status != "missing":
            import nbformat
            outputs = [nbformat.v4.new_output("stream", name="stderr", text=note), *outputs]
        cell["outputs"] = outputs
        cell["execution_count"] = count[0] if count and count[0] else None
        if timing:
            cell.setdefault("metadata", {})["execution"] = timing
    return info
