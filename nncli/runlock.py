"""The advisory lock of a run directory: one process at a time trains or resumes a run.

``.lock`` in the run directory is flock'ed (exclusively) by the process that trains or
resumes the run, and holds that process's PID while it is held. The kernel drops a flock
when its process ends in any way, SIGKILL included, so a killed run needs no clean-up.
:class:`RunLock` is the part of :class:`nncli.runs.RunDir` that owns it.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

from .errors import RunError

LOCK = ".lock"  # flock'ed while a process trains or resumes the run (RunDir.acquire)
LOCK_WAIT = 1.0  # seconds acquire() retries, so a listing's momentary probe is never taken for a trainer

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None


def _lock_holder(fh) -> str:
    """The PID written in a held lock file ('' if unreadable, or not written yet)."""
    try:
        text = os.pread(fh.fileno(), 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return text if text.isdigit() else ""


class RunLock:
    """acquire/release/lock/is_locked of the run directory at ``self.path`` (mixed into RunDir)."""

    _lock = None  # the open .lock file while this object holds the run's lock

    def acquire(self) -> None:
        """Take the run's advisory lock (flock on .lock) and write this process's PID into it.

        Held until :meth:`release`, or until the process ends in any way (the kernel drops a
        flock even on SIGKILL). Another process holding it: RunError naming its PID, with
        nothing in the directory changed. A file system without flock: the run is not locked.
        """
        if self._lock is not None or fcntl is None:
            return
        try:
            fh = os.fdopen(os.open(self / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644), "r+b", buffering=0)
        except OSError as e:
            raise RunError(f"{self / LOCK}: cannot open the run's lock file ({e.strerror})") from None
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:  # a listing's probe holds it for microseconds
                    time.sleep(0.05)
                    continue
                holder = _lock_holder(fh)
                fh.close()
                who = f"process {holder}" if holder else "another process"
                stop = f" (kill -INT {holder} stops it with a checkpoint)" if holder else ""
                raise RunError(f"{self.path}: {who} is training this run; wait until it ends{stop}, "
                               "then resume it") from None
            except OSError:  # no flock on this file system: train unlocked, as before locks existed
                fh.close()
                return
        try:
            os.ftruncate(fh.fileno(), 0)
            os.pwrite(fh.fileno(), f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the lock is held all the same, its PID unknown to others
            pass
        self._lock = fh

    def release(self) -> None:
        """Drop the lock taken by :meth:`acquire` (nothing if not held); the PID is erased."""
        fh, self._lock = self._lock, None
        if fh is None:
            return
        try:
            os.ftruncate(fh.fileno(), 0)
        except OSError:
            pass
        fh.close()

    @contextmanager
    def lock(self):
        """``with rd.lock():`` the run is locked inside the block (see :meth:`acquire`)."""
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def is_locked(self) -> bool:
        """Whether a process holds the run's lock now (a non-blocking shared-lock probe)."""
        if fcntl is None:
            return False
        try:
            fd = os.open(self / LOCK, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False  # no lock file: never locked (or a run from before locks)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)  # drops the probe's shared lock, if it got one
