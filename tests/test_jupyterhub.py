"""deploy/jupyterhub: the class configuration loads with the settings its README promises.

(Not yet here: the end-to-end run of a hub on 127.0.0.1 with students' servers and nbgrader's
exchange; see deploy/jupyterhub/README.md, "Not done yet".)"""
import json
import os
from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "jupyterhub"


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
    assert c.Spawner.cpu_limit == 1 and c.Spawner.mem_limit == "2G"
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
