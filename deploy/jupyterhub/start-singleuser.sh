#!/bin/sh
# A learner's server (Spawner.cmd): on the first start, copy the chapters into ~/seqmodels (the
# learner's own copy to edit and save); then start JupyterHub's single-user JupyterLab from the
# course's environment. Runs as the learner, so it works with every spawner.
set -eu
: "${COURSE_DIR:?set by jupyterhub_config.py}" "${COURSE_VENV:?set by jupyterhub_config.py}"
if [ ! -d "$HOME/seqmodels/notebooks" ]; then
    mkdir -p "$HOME/seqmodels"
    cp -R "$COURSE_DIR/notebooks" "$HOME/seqmodels/notebooks"
    rm -rf "$HOME/seqmodels/notebooks/exercises"   # exercises arrive through nbgrader's exchange
fi
exec "$COURSE_VENV/bin/jupyterhub-singleuser" "$@"
