"""nbgrader settings of every learner's server (JUPYTER_CONFIG_PATH points here): the shared
exchange and the course, so that `nbgrader fetch_assignment 01_rnn` needs no --course."""
import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "seqmodels"
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", "/srv/nbgrader/exchange")
