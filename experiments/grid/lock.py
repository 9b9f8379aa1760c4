"""One session per run folder at a time: ``<run>/.lock``, held for the whole session.

The lock is a ``filelock.FileLock`` (an OS file lock, released by the kernel when its
process ends, ``kill -9`` included). Beside it ``<run>/.lock.json`` names the holder
(pid, host, start time), so that a second session is refused with who holds the run.
The holder file of a session that died is simply taken over (its lock died with it);
:attr:`RunLock.previous` then describes the dead holder.
"""
from __future__ import annotations

import json
import os
import socket

from filelock import FileLock, Timeout

from ..errors import UsageError
from ..files import atomic_write
from .provenance import now

LOCK, HOLDER = ".lock", ".lock.json"


class RunInUse(UsageError):
    """Another live session holds the run."""


def holder_text(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('started', '?')}")


class RunLock:
    """``with RunLock(run_dir, name):`` the session's hold on the run, or :class:`RunInUse`."""

    def __init__(self, run_dir, run_name: str):
        self.run_dir = os.fspath(run_dir)
        self.run_name = run_name
        self.holder_path = os.path.join(self.run_dir, HOLDER)
        self.lock = FileLock(os.path.join(self.run_dir, LOCK), timeout=0)
        self.previous = None  # the holder file a dead session left behind
        self.holder = None

    def _read_holder(self) -> dict:
        try:
            with open(self.holder_path, encoding="utf-8") as fh:
                holder = json.load(fh)
            return holder if isinstance(holder, dict) else {}
        except (OSError, ValueError):
            return {}

    def __enter__(self):
        os.makedirs(self.run_dir, exist_ok=True)
        try:
            self.lock.acquire()
        except Timeout:
            holder = self._read_holder()
            raise RunInUse(
                f"--run: the run {self.run_name!r} in {self.run_dir} is in use by "
                f"{holder_text(holder) if holder else 'another session'}; wait for it to end or choose another "
                "--run name") from None
        # We hold the OS lock, so whoever the holder file names has ended without removing it.
        self.previous = self._read_holder() or None
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": now()}
        try:
            atomic_write(self.holder_path, json.dumps(self.holder) + "\n")
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, *exc):
        try:
            os.unlink(self.holder_path)
        except OSError:
            pass
        self.lock.release()
        return False
