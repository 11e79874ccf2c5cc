"""deploy/jupyterhub: the class configuration loads with the settings its README promises, and a
class runs on it end to end on 127.0.0.1.

The end-to-end test starts JupyterHub with the course's jupyterhub_config.py, changed only where a
test must (DummyAuthenticator instead of PAM, SimpleLocalProcessSpawner instead of system
accounts, loopback ports, a temporary exchange and course directory), behind the real proxy (npm's
configurable-http-proxy, installed into .venv/ on first use). Two students and an instructor:
each student's server starts, lands on chapter 00 and runs its first cell through the kernel API;
the instructor releases an assignment through nbgrader's exchange, the students fetch it, edit it
and submit it through their servers' nbgrader API (what JupyterLab's Assignments tab calls), one
right and one wrong; the instructor collects and autogrades, and the gradebook must hold each
student's score under the student's hub name. Everything the test started is stopped.
"""
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from test_lab import api, execute, free_port
from test_nbgrader_roundtrip import Course

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "jupyterhub"
PROXY_VERSION = "4.6.3"          # npm's configurable-http-proxy (JupyterHub's default proxy)
PROXY_DIR = REPO / ".venv" / "configurable-http-proxy"
STUDENTS, INSTRUCTOR = ("alice", "bob"), "carol"
ASSIGNMENT = "00_setup_and_tour"  # the quickest assignment to autograde


def load_config(env: dict):
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return PyFileConfigLoader("jupyterhub_config.py", path=str(DEPLOY)).load_config()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_class_configuration():
    c = load_config({"COURSE_STUDENTS": "alice,bob", "COURSE_INSTRUCTORS": "carol"})
    env = c.Spawner.environment
    assert env["OMP_NUM_THREADS"] == "1" and env["OMP_WAIT_POLICY"] == "PASSIVE" and env["COURSE_FAST"] == "1"
    assert c.Spawner.cpu_limit == 1 and c.Spawner.mem_limit == "3G"
    start = Path(c.Spawner.cmd[0])
    assert start.is_file() and os.access(start, os.X_OK)
    # the default URL opens the chapter the start script copies from the course
    assert c.Spawner.default_url == "/lab/tree/seqmodels/notebooks/00_setup_and_tour.ipynb"
    assert (Path(env["COURSE_DIR"]) / "notebooks" / "00_setup_and_tour.ipynb").is_file()
    settings = Path(c.Spawner.args[0].split("=", 1)[1])
    assert json.loads((settings / "overrides.json").read_text())[
        "@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert c.Authenticator.allowed_users == {"alice", "bob", "carol"} and c.Authenticator.admin_users == {"carol"}
    formgrader = next(s for s in c.JupyterHub.services if s["name"] == "seqmodels")
    assert formgrader["cwd"] == env["COURSE_DIR"] and "--ServerApp.default_url=/formgrader" in formgrader["command"]
    assert c.JupyterHub.load_groups["formgrade-seqmodels"]["users"] == ["carol"]
    assert c.JupyterHub.load_groups["nbgrader-seqmodels"]["users"] == ["alice", "bob"]
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "formgrade-seqmodels")
    assert role["scopes"] == ["access:services!service=seqmodels"]


# -- the end-to-end run ---------------------------------------------------------------------------

def proxy_command() -> str:
    """configurable-http-proxy: from PATH, or the pinned npm package installed into .venv/."""
    found = shutil.which("configurable-http-proxy")
    local = PROXY_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    if found or local.exists():
        return found or str(local)
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("JupyterHub's proxy needs Node.js and npm: `sudo apt-get install nodejs npm` "
                    "(Debian/Ubuntu; .ci/run does this), then this test installs configurable-http-proxy")
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PROXY_DIR),
                           f"configurable-http-proxy@{PROXY_VERSION}"],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not local.exists():   # offline, or the registry is unreachable
        pytest.skip(f"could not install configurable-http-proxy with npm:\n{done.stdout}{done.stderr}"[-2000:])
    return str(local)


class Hub:
    """A JupyterHub on 127.0.0.1 running the course's configuration, as far as a test can."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.token = "e2e-" + uuid.uuid4().hex              # the test's admin service
        # the grader's course directory and the exchange, as the round-trip test makes them
        self.course = Course(root)
        self.course.exchange.chmod(0o1777)                  # as the README asks of /srv/nbgrader/exchange
        self.formgrader_port = formgrader_port = free_port()
        config = root / "jupyterhub_config.py"
        config.write_text(f"""
load_subconfig({str(DEPLOY / "jupyterhub_config.py")!r})       # the course's configuration
# what a test on one machine must change
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{proxy_command()!r}]
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(root / "home" / "{username}")!r}
c.JupyterHub.db_url = {"sqlite:///" + str(root / "jupyterhub.sqlite")!r}
c.JupyterHub.cookie_secret_file = {str(root / "cookie_secret")!r}
c.JupyterHub.pid_file = {str(root / "jupyterhub.pid")!r}
c.ConfigurableHTTPProxy.pid_file = {str(root / "proxy.pid")!r}
formgrader = next(s for s in c.JupyterHub.services if s["name"] == "seqmodels")
formgrader.update(url="http://127.0.0.1:{formgrader_port}", cwd={str(self.course.root)!r})
formgrader["command"] = [a if not a.startswith("--port=") else "--port={formgrader_port}" for a in formgrader["command"]]
if {os.getuid() == 0}:   # every server runs as this test's account; Jupyter refuses root without this
    c.Spawner.args.append("--allow-root")
    formgrader["command"].append("--allow-root")
# servers that ignore SIGINT get SIGTERM after 2 s instead of 30 (the hub's shutdown, not a check)
c.LocalProcessSpawner.interrupt_timeout = 2
c.JupyterHub.services.append({{"name": "e2e-test", "api_token": {self.token!r}}})
c.JupyterHub.load_roles.append({{"name": "admin", "services": ["e2e-test"]}})
""")
        self.env = {**self.course.env,        # NBGRADER_EXCHANGE, alembic on PATH, no COURSE_FAST
                    "COURSE_STUDENTS": ",".join(STUDENTS), "COURSE_INSTRUCTORS": INSTRUCTOR,
                    "COURSE_GRADER": os.environ.get("USER") or getpass.getuser()}
        self.log = open(root / "jupyterhub.log", "w")
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)],
                                        cwd=root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.user_tokens: dict[str, str] = {}
        self.server_pids: list[int] = []

    def log_tail(self) -> str:
        self.log.flush()
        return (self.root / "jupyterhub.log").read_text()[-6000:]

    def api(self, path, method="GET", body=None, token=None):
        return api(self.port, path, method=method, body=body, token=token or self.token)

    def wait(self, what, ready, timeout=180):
        deadline = time.time() + timeout
        while True:
            assert self.process.poll() is None, f"the hub exited while waiting for {what}:\n{self.log_tail()}"
            try:
                if ready():
                    return
            except (OSError, KeyError, TypeError):
                pass
            assert time.time() < deadline, f"{what}: not ready within {timeout} s\n{self.log_tail()}"
            time.sleep(1)

    def children(self, marker: str) -> list[int]:
        """The hub's child processes whose command line contains ``marker`` (read from /proc)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                if ppid == self.process.pid and marker.encode() in (stat.parent / "cmdline").read_bytes():
                    found.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                pass
        return found

    def stop(self):
        """SIGTERM to the hub (it stops the servers, services and proxy it started), then make sure."""
        if self.process.poll() is None:
            service = self.children(f"--port={self.formgrader_port}")
            os.killpg(self.process.pid, signal.SIGTERM)
            # inside a pytest-xdist worker the formgrader service does not react to the SIGINT the hub
            # stops it with, and the hub waited its 30 s interrupt timeout before SIGTERM (seen in every
            # suite run; not when this file runs alone): SIGTERM it now, as the hub would after the wait
            for pid in service:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        left = []
        for pid in self.server_pids:
            try:
                os.kill(pid, 0)
                left.append(pid)
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        return left


def user_server(hub: Hub, name: str) -> dict:
    return hub.api(f"/hub/api/users/{name}")["servers"][""]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    pytest.importorskip("jupyterhub", reason="jupyterhub is in the course's dev extras: pip install -e '.[dev]'")
    running = Hub(tmp_path_factory.mktemp("hub"))
    try:
        running.wait("the hub", lambda: running.api("/hub/api/") is not None, timeout=120)
        yield running
    finally:
        left = running.stop()
        assert not left, f"servers still running after the hub stopped: {left}"


def test_a_class_on_jupyterhub_end_to_end(hub):
    # -- every student's server starts, at chapter 00 of their own copy, and runs its first cell
    for name in STUDENTS:
        hub.user_tokens[name] = hub.api(f"/hub/api/users/{name}/tokens", "POST",
                                        {"note": "e2e", "expires_in": 3600})["token"]
        hub.api(f"/hub/api/users/{name}/server", "POST")
    hub.user_tokens[INSTRUCTOR] = hub.api(f"/hub/api/users/{INSTRUCTOR}/tokens", "POST",
                                          {"note": "e2e", "expires_in": 3600})["token"]
    for name in STUDENTS:
        hub.wait(f"{name}'s server", lambda name=name: user_server(hub, name)["ready"])
        hub.server_pids.append(int(user_server(hub, name)["state"]["pid"]))
    chapter00 = "seqmodels/notebooks/00_setup_and_tour.ipynb"
    first_cell = "".join(next(c for c in json.loads((REPO / "notebooks" / "00_setup_and_tour.ipynb").read_text())
                              ["cells"] if c["cell_type"] == "code")["source"])
    for name in STUDENTS:
        token, prefix = hub.user_tokens[name], f"/user/{name}"
        # the default URL is chapter 00 of the learner's copy, made by start-singleuser.sh
        request = urllib.request.Request(f"http://127.0.0.1:{hub.port}{prefix}/",
                                         headers={"Authorization": f"token {token}"})
        landed = urllib.request.urlopen(request, timeout=30).geturl()
        assert urllib.parse.urlparse(landed).path == f"{prefix}/lab/tree/{chapter00}", landed
        assert api(hub.port, f"{prefix}/api/contents/{chapter00}", token=token)["type"] == "notebook"
        assert not (hub.root / "home" / name / "seqmodels" / "notebooks" / "exercises").exists()
        kernel = api(hub.port, f"{prefix}/api/kernels", "POST", {"name": "python3"}, token=token)
        status, stdout = execute(hub.port, kernel["id"], first_cell, prefix=prefix, token=token, timeout=180)
        assert status == "ok" and "mode fast" in stdout, stdout
        status, stdout = execute(hub.port, kernel["id"],
                                 "import os, torch; print(os.environ['OMP_NUM_THREADS'], torch.get_num_threads(), "
                                 "os.environ['JUPYTERHUB_USER'])", prefix=prefix, token=token)
        assert status == "ok" and stdout.split() == ["1", "1", name], stdout   # one thread per learner
        api(hub.port, f"{prefix}/api/kernels/{kernel['id']}", "DELETE", token=token)
    # a learner's token opens only the learner's own server
    with pytest.raises(urllib.error.HTTPError, match="403|404"):
        api(hub.port, f"/user/{STUDENTS[1]}/api/contents", token=hub.user_tokens[STUDENTS[0]])

    # -- the formgrader service answers the instructor, not a student
    hub.wait("the formgrader service", lambda: api(hub.port, "/services/seqmodels/api/status",
                                                   token=hub.user_tokens[INSTRUCTOR]) is not None, timeout=120)
    with pytest.raises(urllib.error.HTTPError, match="403"):
        api(hub.port, "/services/seqmodels/api/status", token=hub.user_tokens[STUDENTS[0]])

    # -- the instructor releases an assignment through the exchange
    hub.course.nbgrader("generate_assignment", ASSIGNMENT)
    hub.course.nbgrader("release_assignment", ASSIGNMENT)
    right = hub.course.solution_answers(ASSIGNMENT)

    # -- each student fetches, edits and submits it through their own server (one right, one wrong)
    for name in STUDENTS:
        token, prefix = hub.user_tokens[name], f"/user/{name}"
        body = {"course_id": "seqmodels", "assignment_id": ASSIGNMENT}
        listed = api(hub.port, f"{prefix}/assignments/fetch", "POST", body, token=token)
        assert listed["success"], listed
        fetched = next(a for a in listed["value"] if a["assignment_id"] == ASSIGNMENT and a["status"] == "fetched")
        path = fetched["notebooks"][0]["path"]
        notebook = api(hub.port, f"{prefix}/api/contents/{path}", token=token)
        for cell in notebook["content"]["cells"]:
            gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
            if gid in right and name == STUDENTS[0]:
                cell["source"] = right[gid]                                  # alice: the reference
            elif gid in right:
                cell["source"] = cell["source"].replace("raise NotImplementedError()", "return None")  # bob: wrong
        api(hub.port, f"{prefix}/api/contents/{path}", "PUT",
            {"type": "notebook", "format": "json", "content": notebook["content"]}, token=token)
        submitted = api(hub.port, f"{prefix}/assignments/submit", "POST", body, token=token)
        assert submitted["success"], submitted

    # -- the instructor collects and autogrades; the gradebook holds each student's score
    hub.course.nbgrader("collect", ASSIGNMENT)
    assert sorted(p.name for p in (hub.course.root / "submitted").iterdir()) == sorted(STUDENTS)
    hub.course.nbgrader("autograde", ASSIGNMENT)
    max_score = hub.course.max_score(ASSIGNMENT)
    scores = {student: sum(cells.values()) for student, cells in hub.course.scores(ASSIGNMENT).items()}
    assert max_score > 0 and scores == {STUDENTS[0]: max_score, STUDENTS[1]: 0.0}, scores
