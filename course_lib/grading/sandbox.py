"""The sandbox that grading kernels run in: bubblewrap (``bwrap``, Debian's ``bubblewrap`` package).

Inside it the learner's code sees the machine read-only, with the course directory, the source
notebooks, the gradebook, the exchange and ``/tmp`` hidden (empty), the Python environment and
``course_lib`` visible read-only, a network of its own with no interface but loopback, its own
process table, and one writable folder: the working copy of the hand-in. The kernel talks to the
grader over Unix sockets in a private folder (ZeroMQ's ``ipc`` transport), which is why no network
is needed. See docs/instructors.md, "The grading sandbox".

Where bubblewrap is missing or cannot create namespaces (macOS, some containers) grading still
works, unsandboxed, and says so loudly (:func:`status`).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(__file__).resolve().parents[1]   # course_lib
NOT_SANDBOXED = ("WARNING: NOT SANDBOXED. bubblewrap (bwrap) is not available here, so the learner's code "
                 "runs with the grader's own rights: it can read the source notebooks and change the "
                 "gradebook and other hand-ins. Install it (Debian/Ubuntu: apt-get install bubblewrap) "
                 "before grading work you do not trust; see docs/instructors.md.")


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """True when ``bwrap`` exists and can build the sandbox on this machine (tried once)."""
    if os.environ.get("COURSE_GRADING_SANDBOX", "").lower() == "none" or not shutil.which("bwrap"):
        return False
    try:
        done = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                               "--unshare-net", "--unshare-pid", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def status() -> str:
    """One line for logs and reports: sandboxed or, loudly, not."""
    return "sandboxed (bubblewrap: read-only root, course hidden, no network)" if available() else NOT_SANDBOXED


def _visible() -> list[Path]:
    """What the kernel needs to see even inside a hidden folder: Python and its packages, course_lib, data."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), PACKAGE, REPO / "data"}
    paths.update(Path(p) for p in sys.path if p and Path(p).is_dir() and "site-packages" in p)
    return sorted(p.resolve() for p in paths if p.exists())


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def bwrap_argv(workdir: str | Path, private: str | Path, hide: list[str | Path] = ()) -> list[str]:
    """The ``bwrap`` command line before the kernel's own: ``workdir`` writable and the kernel's cwd,
    ``private`` (the socket folder) writable, ``hide`` and /tmp empty, the rest read-only."""
    workdir, private = Path(workdir).resolve(), Path(private).resolve()
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--tmpfs", "/dev/shm", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--die-with-parent"]
    hidden = sorted({Path(h).resolve() for h in [REPO, *hide] if h and Path(h).exists()})
    visible = _visible()
    for folder in hidden:
        if _inside(workdir, folder) or _inside(private, folder):
            continue  # never hide the hand-in itself (it is bound again below anyway)
        argv += ["--tmpfs", str(folder)]
        for path in visible:
            if _inside(path, folder) and path != folder:
                argv += ["--ro-bind", str(path), str(path)]
    argv += ["--bind", str(private), str(private), "--bind", str(workdir), str(workdir),
             "--chdir", str(workdir), "--setenv", "HOME", "/tmp", "--setenv", "IPYTHONDIR", "/tmp/.ipython",
             "--setenv", "MPLCONFIGDIR", "/tmp/.matplotlib", "--unsetenv", "JPY_PARENT_PID"]
    return argv


# Run by the kernel before it answers: the hand-in's folder is not an import path (a file handed in
# as torch.py must not replace torch), and torch is imported while the kernel starts in the background.
STARTUP_LINES = ("import sys as _s, os as _o",
                 "_s.path[:] = [p for p in _s.path if p not in ('', '.', _o.getcwd())]",
                 "import torch as _t",
                 "del _s, _o, _t")


def kernel_spec(workdir: str | Path, private: str | Path, hide: list[str | Path] = (), sandbox: bool = True):
    """The Jupyter kernel spec of a grading kernel (ipykernel, inside bwrap when ``sandbox``)."""
    from jupyter_client.kernelspec import KernelSpec

    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
              *(f"--IPKernelApp.exec_lines={line}" for line in STARTUP_LINES)]
    argv = [*bwrap_argv(workdir, private, hide), *kernel] if sandbox else kernel
    env = {"MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    return KernelSpec(argv=argv, display_name="course grading kernel" + (" (sandboxed)" if sandbox else ""),
                      language="python", env=env, interrupt_mode="signal")


if __name__ == "__main__":
    print(status())
    sys.exit(0 if available() else 1)
