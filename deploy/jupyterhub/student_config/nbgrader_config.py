"""nbgrader settings of every learner's server (JUPYTER_CONFIG_PATH points here): the shared
exchange and the course, so that `nbgrader fetch_assignment 01_rnn` needs no --course."""
import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "seqmodels"
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")
# Submissions are named after the learner's hub name. nbgrader would take the system account's
# name, which is the same on The Littlest JupyterHub (one account per learner) but not where every
# learner's server runs under one account (Docker and Kubernetes images run everyone as jovyan).
if os.environ.get("JUPYTERHUB_USER"):
    c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
