"""Where a run came from: versions, git commit, machine and the time, for ``manifest.json``."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
import sys

# Packages whose versions go into the manifest (distribution names; not imported).
_VERSIONED = ("xfw", "numpy", "scipy", "scikit-learn", "pandas", "torch", "tensorflow", "keras", "dask",
              "distributed", "seaborn", "matplotlib", "tqdm")


def now() -> str:
    """The local time with its UTC offset, ISO 8601, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def versions() -> dict:
    """Python and the installed versions of the suite and every framework (not imported)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(folder=None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the project's git checkout."""
    folder = folder or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def git(*args):
        return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "hostname": socket.gethostname(), "executable": sys.executable}
