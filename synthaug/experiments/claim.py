"""Claiming a step folder, so that several workers can run the same experiment code side by side.

A worker about to run a step creates a lock file beside the step's folder (`<folder>.lock.0`; beside, because a
step may swap its whole folder into place) with O_CREAT | O_EXCL: creation is
atomic (also on NFS), so exactly one worker runs the step; the others wait for its done.json. The lock says
who holds it (host, process id) and its holder touches it every HEARTBEAT seconds. A lock is stale when its
holder is gone: a dead process on this machine (seen at once), or no heartbeat for STALE seconds (a worker on a
lost node). A stale lock is never deleted and re-created (two waiters could then both take over): the first
waiter to create the *next* lock file (.lock.1 after .lock.0, again O_EXCL) takes the step over, and resumes it
from its checkpoint.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

HEARTBEAT = 10.0  # seconds between touches of a held lock
STALE = 120.0  # seconds without a touch after which a lock on another machine counts as abandoned (NFS caches
#   file times for up to a minute, and the machines' clocks differ a little)


def _machine() -> str:
    """This machine and process namespace: pids are only comparable between processes that share both."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


def _process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:  # a killed worker may linger as a zombie until its parent reaps it
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class FolderLock:
    """The lock of one step folder. acquire() never blocks: it takes the lock or says who holds it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.prefix = f"{folder.name}.lock."
        self.path: Path | None = None  # the lock file this process holds
        self._stop = threading.Event()  # ends the heartbeat of the lock held now

    def _newest(self) -> tuple[int, Path] | None:
        return max(self._files(), default=None)

    def _files(self) -> list[tuple[int, Path]]:
        n = len(self.prefix)
        return [(int(p.name[n:]), p) for p in self.folder.parent.glob(glob.escape(self.prefix) + "*") if p.name[n:].isdigit()]

    def _state(self) -> tuple[int, str | None]:
        """The generation the next lock file would have, and who holds the folder now ("host pid N"; None when
        nobody does: no lock file, or a stale one)."""
        newest = self._newest()
        if newest is None:
            return 0, None
        generation, path = newest
        try:
            age = time.time() - path.stat().st_mtime
            owner = json.loads(path.read_text() or "{}")
        except FileNotFoundError:  # released just now: look again
            return self._state()
        except ValueError:  # being written just now
            owner = {}
        gone = age > STALE or (owner.get("machine") == _machine() and not _process_alive(owner["pid"]))
        return generation + 1, None if gone else f"{owner.get('host', '?')} pid {owner.get('pid', '?')}"

    def holder(self) -> str | None:
        return self._state()[1]

    def acquire(self) -> bool:
        """Take the folder if nobody holds it; False if somebody does (or won the race for it just now)."""
        generation, holder = self._state()
        if holder is not None:
            return False
        path = self.folder.parent / f"{self.prefix}{generation}"
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getpid(), "machine": _machine(),
                       "token": uuid.uuid4().hex}, f)
        self.path = path
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, args=(path, self._stop), daemon=True).start()
        return True

    @staticmethod
    def _heartbeat(path: Path, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT):
            try:
                os.utime(path)
            except FileNotFoundError:
                return

    def release(self) -> None:
        """Give the folder up (with older, stale lock files): finished, or failed for another worker to retry."""
        if self.path is None:
            return
        self._stop.set()
        held = int(self.path.name[len(self.prefix):])
        for generation, path in self._files():
            if generation <= held:
                path.unlink(missing_ok=True)
        self.path = None

