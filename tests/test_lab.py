"""The README's JupyterLab command serves the course: start it on 127.0.0.1 with a token, run a
cell of chapter 00 through the kernel API, and stop it."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

websocket = pytest.importorskip("websocket")  # websocket-client ships with jupyter_server

REPO = Path(__file__).resolve().parent.parent
TOKEN = "course-test-" + uuid.uuid4().hex


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port, path, method="GET", body=None, token=TOKEN):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        return json.loads(raw) if raw else None


def first_code_cell(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def execute(port, kernel_id, code, timeout=120, prefix="", token=TOKEN):
    """Run code in a kernel of the server at 127.0.0.1:port{prefix} -> (reply status, stdout)."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}{prefix}/api/kernels/{kernel_id}/channels",
                                     header=[f"Authorization: token {token}"], timeout=timeout)
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    # the reply (shell channel) can arrive before the last output (iopub): wait for both the reply
    # and the kernel's "idle" after this request
    stdout, status, idle, deadline = "", None, False, time.time() + timeout
    while not (status and idle) and time.time() < deadline:
        message = json.loads(ws.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "stream":
            stdout += message["content"]["text"]
        elif message["msg_type"] == "execute_reply":
            status = message["content"]["status"]
        elif message["msg_type"] == "status":
            idle = message["content"]["execution_state"] == "idle"
    ws.close()
    return status, stdout


def test_course_lab_serves_chapter_00_and_runs_a_cell(tmp_path):
    port = free_port()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), COURSE_FAST="1")
    server = subprocess.Popen(
        [str(REPO / "course"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", "--ServerApp.port_retries=0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        deadline = time.time() + 180
        while True:
            assert server.poll() is None, f"./course lab exited early:\n{server.stdout.read()}"
            try:
                api(port, "/api/status")
                break
            except OSError:
                assert time.time() < deadline, "JupyterLab did not answer within 180 s"
                time.sleep(1)
        with pytest.raises(urllib.error.HTTPError, match="403"):  # the token is required
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernels", timeout=10)
        opened = urllib.request.urlopen(f"http://127.0.0.1:{port}/?token={TOKEN}", timeout=30).geturl()
        assert opened.split("?")[0].endswith("/lab/tree/notebooks/00_setup_and_tour.ipynb"), opened
        chapter = api(port, "/api/contents/notebooks/00_setup_and_tour.ipynb")
        assert chapter["type"] == "notebook"
        kernel = api(port, "/api/kernels", method="POST", body={"name": "python3"})
        status, stdout = execute(port, kernel["id"], first_code_cell(REPO / "notebooks" / "00_setup_and_tour.ipynb"))
        assert status == "ok", stdout
        assert "torch 2.13.0" in stdout and "mode fast" in stdout
        api(port, f"/api/kernels/{kernel['id']}", method="DELETE")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
            stopped_on_sigterm = True
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            stopped_on_sigterm = False
    # the server must shut down cleanly when asked (not need SIGKILL)
    assert stopped_on_sigterm, "JupyterLab did not stop within 30 s of SIGTERM"
