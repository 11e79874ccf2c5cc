"""JupyterHub for a class taking the course, with nbgrader's exchange and a formgrader for instructors.

Start it as root on the course's server (one clone of the repository, its .venv made by
`./course test` or `./course lab` once):

    COURSE_DIR=/opt/seqmodels /opt/seqmodels/.venv/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

Every value a class changes is an environment variable or a line below. Learners log in, get a
single-user JupyterLab from the course's own environment with their own copy of the chapters,
and land on chapter 00. See README.md beside this file for The Littlest JupyterHub and Zero to
JupyterHub, and for the sizing behind the limits.
"""
import importlib.util
import os
from pathlib import Path

c = get_config()  # noqa: F821  (provided by traitlets when JupyterHub loads this file)

COURSE_DIR = Path(os.environ.get("COURSE_DIR", Path(__file__).resolve().parents[2]))
COURSE_VENV = Path(os.environ.get("COURSE_VENV", COURSE_DIR / ".venv"))
COURSE_ID = "seqmodels"                      # nbgrader's course id (nbgrader_config.py)
EXCHANGE = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")
GRADER = os.environ.get("COURSE_GRADER", f"grader-{COURSE_ID}")   # the system account that owns the gradebook
INSTRUCTORS = [u for u in os.environ.get("COURSE_INSTRUCTORS", "instructor").split(",") if u]
STUDENTS = [u for u in os.environ.get("COURSE_STUDENTS", "").split(",") if u]
FORMGRADER_PORT = int(os.environ.get("COURSE_FORMGRADER_PORT", "9999"))

# -- Who may log in -------------------------------------------------------------------------------
# PAM (system accounts) by default, as The Littlest JupyterHub; a class usually swaps in its
# university's OAuth (oauthenticator) here.
c.Authenticator.allowed_users = set(STUDENTS) | set(INSTRUCTORS)
c.Authenticator.admin_users = set(INSTRUCTORS)

# -- The single-user server: the course's environment, opened at chapter 00 -----------------------
# start-singleuser.sh copies the chapters into ~/seqmodels on a first start, then runs
# .venv/bin/jupyterhub-singleuser
c.Spawner.cmd = [str(COURSE_DIR / "deploy" / "jupyterhub" / "start-singleuser.sh")]
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab/tree/seqmodels/notebooks/00_setup_and_tour.ipynb"
# the course's JupyterLab defaults (no news pop-up), as ./course lab uses them
c.Spawner.args = [f"--LabApp.app_settings_dir={COURSE_DIR / 'course_settings' / 'jupyterlab'}"]
c.Spawner.environment = {
    "COURSE_DIR": str(COURSE_DIR),
    "COURSE_VENV": str(COURSE_VENV),
    # one learner = one core: PyTorch would otherwise start a thread per core of the server and
    # 100 kernels would fight over them; PASSIVE keeps idle threads from spinning (see ./course)
    "OMP_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "COURSE_FAST": os.environ.get("COURSE_FAST", "1"),   # fast mode for a class; 0 for full mode
    "NBGRADER_EXCHANGE": EXCHANGE,
    # learners' nbgrader settings (exchange, course id): deploy/jupyterhub/student_config/
    "JUPYTER_CONFIG_PATH": str(COURSE_DIR / "deploy" / "jupyterhub" / "student_config"),
}
# Per-learner limits, measured in README.md ("Sizing"). Enforced by spawners that can (systemd,
# Docker, Kubernetes); the plain LocalProcessSpawner only reports them to the server.
c.Spawner.mem_limit = os.environ.get("COURSE_MEM_LIMIT", "3G")  # full mode: chapter 06 peaks at 2.0 GB
c.Spawner.cpu_limit = float(os.environ.get("COURSE_CPU_LIMIT", "1"))
c.Spawner.mem_guarantee = "1G"
c.Spawner.cpu_guarantee = 0.5
c.Spawner.start_timeout = 120   # a busy server imports torch slowly
c.Spawner.http_timeout = 60


# -- Roles and services: the idle culler and the formgrader ---------------------------------------
c.JupyterHub.load_roles = [
    # nbgrader's multiple-classes set-up: instructors reach the formgrader service, and the
    # service may read the hub's groups to know its students
    {"name": f"formgrade-{COURSE_ID}", "groups": [f"formgrade-{COURSE_ID}"],
     "scopes": [f"access:services!service={COURSE_ID}"]},
    {"name": f"service-{COURSE_ID}", "services": [COURSE_ID],
     "scopes": ["read:users:groups", "list:groups", f"read:groups!group=nbgrader-{COURSE_ID}",
                "list:users", "read:users"]},
]
c.JupyterHub.services = [
    # the formgrader: a single-user server run as the grader account in the course directory,
    # where nbgrader_config.py and the gradebook live (nbgrader docs, "multiple classes")
    {"name": COURSE_ID,
     "url": f"http://127.0.0.1:{FORMGRADER_PORT}",
     "command": [str(COURSE_VENV / "bin" / "jupyterhub-singleuser"), f"--port={FORMGRADER_PORT}",
                 "--ip=127.0.0.1", "--ServerApp.default_url=/formgrader"],
     "user": GRADER,
     "cwd": str(COURSE_DIR),
     "environment": {"NBGRADER_EXCHANGE": EXCHANGE, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                     "COURSE_FAST": "1"},
     "oauth_no_confirm": True},
]
c.JupyterHub.load_groups = {
    f"formgrade-{COURSE_ID}": {"users": INSTRUCTORS},
    f"nbgrader-{COURSE_ID}": {"users": STUDENTS},
}

# The idle culler (PyPI jupyterhub-idle-culler, in the hub's environment) stops a server after an
# hour without activity; a stopped learner loses no files, only the kernel's state.
if importlib.util.find_spec("jupyterhub_idle_culler"):
    c.JupyterHub.services.append(
        {"name": "jupyterhub-idle-culler-service",
         "command": [str(COURSE_VENV / "bin" / "python"), "-m", "jupyterhub_idle_culler",
                     "--timeout=3600", "--cull-every=300"]})
    # (the hub refuses to start with a role naming a service it does not have)
    c.JupyterHub.load_roles.append(
        {"name": "jupyterhub-idle-culler-role",
         "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
         "services": ["jupyterhub-idle-culler-service"]})
else:
    print("jupyterhub_config: jupyterhub-idle-culler is not installed, idle servers will not be stopped "
          "(pip install jupyterhub-idle-culler)")
