"""The grading runner's output cap: printed output is cut to ``output_limit`` characters per cell,
with a note saying how much was cut; bytes a learner's function writes straight to file descriptor 1
are kept only as far as the kernel forwards them while the cell runs, and never beyond the cap."""
import nbformat

from course_lib.grading.runner import run_notebook


def test_output_is_capped_per_cell_with_a_note(tmp_path):
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell("def flood():\n    import os\n    os.write(1, b'x' * 100_000)\n"
                                       "    print('after')")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": "ex1",
                                   "schema_version": 3}
    tests = [nbformat.v4.new_code_cell("print('y' * 50_000)"),   # runs in the grader
             nbformat.v4.new_code_cell("flood()"),               # the learner's function, in the kernel
             nbformat.v4.new_code_cell("print('short')")]
    for i, cell in enumerate(tests):
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 1,
                                     "grade_id": f"ex{i}_tests", "schema_version": 3}
    nb.cells = [answer, *tests]
    run_notebook(nb, tmp_path, timeout=60, output_limit=20_000, isolate="notebook")
    texts = [[o.get("text", "") for o in cell.outputs if o.output_type == "stream"] for cell in tests]
    kept = lambda cell: sum(len(t) for t in cell if "[grading] output cut" not in t)  # noqa: E731
    assert kept(texts[0]) == 20_000
    assert any("output cut: 30,001 more characters" in t for t in texts[0]), texts[0][-1][:200]
    assert kept(texts[1]) <= 20_000 and "after" in "".join(texts[1])
    assert texts[2] == ["short\n"]


def test_a_function_that_breaks_the_grading_protocol_fails_only_its_cell(tmp_path):
    """The learner's functions run in the kernel, the checks here (course_lib.grading.remote). A function
    that writes garbage on the kernel's connection to the grader fails its own test cell with a
    message; the kernel is interrupted and the next test cell passes. Inside bubblewrap the interrupt
    ends the kernel (bwrap itself takes the SIGINT, and the kernel dies with it), so a new kernel, with
    the definitions run again, takes the next cell; unsandboxed the same kernel does."""
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell(
        "def sabotage():\n    import gc, socket\n"
        "    for s in [o for o in gc.get_objects() if isinstance(o, socket.socket)]:\n"
        "        if s.family == socket.AF_UNIX and str(s.getpeername()).endswith('r.sock'):\n"
        "            s.sendall(b'\\x00' * 7 + b'\\x05' + b'junk!')   # a frame of 5 bytes, not a message\n"
        "    return 1\n"
        "def answer():\n    return 42\n")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": "ex1",
                                   "schema_version": 3}
    tests = [nbformat.v4.new_code_cell("assert sabotage() == 1"),
             nbformat.v4.new_code_cell("assert answer() == 42\nprint('fine')")]
    for i, cell in enumerate(tests):
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 1,
                                     "grade_id": f"ex{i}_tests", "schema_version": 3}
    nb.cells = [answer, *tests]
    info = run_notebook(nb, tmp_path, timeout=60, isolate="notebook")
    first = [o for o in tests[0].outputs if o.output_type == "error"]
    assert first and first[-1].ename == "GradingProtocolError" and "unreadable" in first[-1].evalue, tests[0].outputs
    assert not [o for o in tests[1].outputs if o.output_type == "error"], tests[1].outputs
    assert "fine" in "".join(o.get("text", "") for o in tests[1].outputs)
    assert info.kernels == (2 if info.sandboxed else 1) and not info.deaths
