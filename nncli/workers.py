"""The local executor of ``nncli sweep`` and ``nncli cv``: N long-lived worker processes.

Each worker is ``python -m nncli.workers RFD WFD``: it imports nncli once, then trains point
after point in-process with :func:`nncli.pointrun.train_point` (the job ``nncli train`` runs,
so the run directories are the command's, bit for bit), instead of a new interpreter and
its imports (about 1.5 s) per point.

Protocol: two pipes per worker, on descriptors of their own (never 0, 1 or 2, so nothing a
point prints can corrupt it), carrying pickled tuples (multiprocessing.connection framing):

    driver -> worker   ("task", point dict, cwd, report?)      train this point
                       ("prune", message or None)             the answer to an "epoch"
    worker -> driver   ("started",)                           the worker is training it
                       ("epoch", EpochRecord as a tuple)      only if report?: then it waits
                       ("done", Outcome as a dict)            the point's outcome

The driver closing its end of the command pipe tells an idle worker to exit, and a busy
one to stop its point at the next epoch (with a checkpoint, as a signal would).

Signals. A worker starts with SIGINT and SIGTERM blocked (the driver blocks them around the
spawn; the mask is inherited) and unblocks them once its handler is in place. The handler
asks the point being trained to stop (it checkpoints: outcome 130, resumable with ``nncli
train --resume``); an idle worker ignores them. So Ctrl-C at a terminal, which reaches the
driver and every worker (one process group), stops each running point once; the driver's
:meth:`LocalWorkerExecutor.stop` sends SIGINT to each worker that has started a point, so a
signal to the driver alone (``kill -INT PID``) does the same. Later signals change nothing.

A worker that dies (SIGKILL, the OOM killer) fails its point with one line and is replaced
when a point next needs one; the sweep goes on. However the sweep ends (normally, an error,
Ctrl-C, an exception in the driver), every worker is told to exit, waited for, and killed
(by its own PID) if it does not.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Optional

from selectors import EVENT_READ

from .executors import Executor, Task, worker_env

#: seconds an idle worker is given to exit once its command pipe is closed, before SIGKILL
EXIT_GRACE = 5.0
#: seconds a busy worker is given to checkpoint its point when the driver fails (then SIGKILL)
STOP_GRACE = 30.0


class _Worker:
    """The driver's handle of one worker process."""

    def __init__(self, env: dict):
        import subprocess
        import tempfile
        from multiprocessing.connection import Connection

        self.task: Optional[Task] = None  # the task it was given, until its outcome is in
        self.started = False  # it said "started": a SIGINT now stops that task
        self.points = 0  # points it has finished
        self.err = tempfile.TemporaryFile()  # its stderr: stray output, a crash's last words
        to_r, to_w = os.pipe()  # driver -> worker
        from_r, from_w = os.pipe()  # worker -> driver
        old = _block_signals()
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "nncli.workers", str(to_r), str(from_w)],
                                         pass_fds=(to_r, from_w), env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self.err)
        except BaseException:
            for fd in (to_w, from_r):
                os.close(fd)
            self.err.close()
            raise
        finally:
            _restore_signals(old)
            os.close(to_r)
            os.close(from_w)
        self.tx = Connection(to_w, readable=False)
        self.rx = Connection(from_r, writable=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def interrupt(self) -> None:
        """SIGINT to this worker (its PID), if it still runs."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
        except OSError:
            pass

    def last_words(self) -> str:
        """The last line the worker wrote on stderr ('' if none)."""
        try:
            self.err.seek(0)
            lines = self.err.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return lines[-1].strip() if lines else ""

    def close(self) -> None:
        for c in (self.tx, self.rx):
            try:
                c.close()
            except OSError:
                pass
        try:
            self.err.close()
        except OSError:
            pass


def _block_signals():
    if hasattr(signal, "pthread_sigmask"):
        return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    return None


def _restore_signals(old) -> None:
    if old is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _death(returncode: Optional[int]) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode}, {name}"
    return f"exit {returncode}"


class LocalWorkerExecutor(Executor):
    """``jobs`` long-lived worker processes on this machine (started as tasks need them), each
    training task after task in-process. Can report epochs (pruning)."""

    reports = True

    def __init__(self, jobs: int, env: Optional[dict] = None):
        self.jobs = max(1, jobs)
        self.env = env  # None: worker_env(jobs) of the environment when each worker starts
        self.workers: list[_Worker] = []
        self.started_workers = 0  # workers started in all (replacements included)
        self._selector = None  # the workers' result pipes, while run() runs

    # ------------------------------------------------------------------ the driver

    def run(self, tasks, done, report=None):
        import selectors

        pending = iter(tasks)
        exhausted = False
        self._selector = selectors.DefaultSelector()
        try:
            while True:
                while not exhausted and not self.stopping and self._busy() < self.jobs:
                    t = next(pending, None)
                    if t is None:
                        exhausted = True
                        break
                    self._give(t, report is not None, done)
                if self.stopping:
                    exhausted = True
                if not any(w.task is not None for w in self.workers):
                    if exhausted:
                        break
                    continue
                for key, _ in self._selector.select(timeout=1.0):
                    self._receive(key.data, done, report)
        finally:
            try:
                self._shutdown()
            finally:
                self._selector.close()
                self._selector = None

    @property
    def _record(self):
        from .trainer import EpochRecord

        return EpochRecord

    def _busy(self) -> int:
        return sum(w.task is not None for w in self.workers)

    def _give(self, t: Task, reporting: bool, done) -> None:
        """Send ``t`` to an idle worker (a new one if none is idle)."""
        message = ("task", t.point.to_dict(), os.getcwd(), reporting)
        for _ in range(3):
            w = next((w for w in self.workers if w.task is None and w.proc.poll() is None), None)
            for dead in [w for w in self.workers if w.task is None and w.proc.returncode is not None]:
                self._discard(dead)
            if w is None:
                try:
                    w = _Worker(self.env if self.env is not None else worker_env(self.jobs))
                except OSError as e:
                    t.returncode, t.stdout = 2, ""
                    t.stderr = f"nncli: error: cannot start a worker process: {e.strerror or e}"
                    done(t)
                    return
                self.workers.append(w)
                self.started_workers += 1
                self._selector.register(w.rx.fileno(), EVENT_READ, w)
            if self.stopping:  # stop() came while the worker started: the task is not run
                return
            try:
                w.tx.send(message)
            except OSError:  # it died while idle: another one
                self._discard(w)
                continue
            w.task, w.started = t, False
            return
        t.returncode, t.stdout, t.stderr = 2, "", "nncli: error: worker processes die as soon as they start"
        done(t)

    def _receive(self, w: _Worker, done, report) -> None:
        try:
            msg = w.rx.recv()
        except (EOFError, OSError):
            self._died(w, done)
            return
        kind = msg[0]
        if w.task is None:  # nothing is expected of an idle worker
            return
        if kind == "started":
            w.started = True
            if self.stopping:  # stop() came before it started: now it can be told
                w.interrupt()
        elif kind == "epoch":
            answer = report(w.task, self._record(*msg[1])) if report is not None else None
            try:
                w.tx.send(("prune", answer or None))
            except OSError:
                pass  # it died: its pipe says so next
        elif kind == "done":
            t = w.task
            out = msg[1]
            t.returncode, t.stdout, t.stderr = out["returncode"], out["stdout"], out["stderr"]
            w.task, w.started = None, False
            w.points += 1
            done(t)

    def _died(self, w: _Worker, done) -> None:
        """``w`` died while it had a task: the task failed (one line), the worker is gone."""
        try:
            rc = w.proc.wait(timeout=EXIT_GRACE)
        except Exception:  # noqa: BLE001 (a worker that closed its pipe but lives on: end it)
            w.proc.kill()
            rc = w.proc.wait()
        t = w.task
        last = w.last_words()
        self._discard(w)
        if t is None:
            return
        t.returncode = rc if rc not in (0, None) else 1
        t.stdout = ""
        t.stderr = (f"nncli: error: the worker process training this point died ({_death(rc)}"
                    f"{'; out of memory?' if rc == -signal.SIGKILL else ''})" + (f": {last}" if last else ""))
        done(t)

    def _discard(self, w: _Worker) -> None:
        if w in self.workers:
            self.workers.remove(w)
        if self._selector is not None:
            try:
                self._selector.unregister(w.rx.fileno())
            except (KeyError, ValueError, OSError):
                pass
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
        w.close()

    def _shutdown(self) -> None:
        """Every worker exits: idle ones at the end of their pipe; busy ones (the driver failed)
        are asked to stop (their points checkpoint) and given STOP_GRACE; then SIGKILL by PID."""
        workers, self.workers = list(self.workers), []
        busy = [w for w in workers if w.task is not None]
        for w in busy:
            w.interrupt()
        for w in workers:
            try:
                w.tx.close()
            except OSError:
                pass
        deadline = time.monotonic() + (STOP_GRACE if busy else EXIT_GRACE)
        interruption = None
        for w in workers:
            while True:
                try:
                    w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except KeyboardInterrupt as e:  # a second Ctrl-C (library use): the workers are still waited for
                    interruption = e
                    continue
                except Exception:  # noqa: BLE001 (TimeoutExpired: it hangs)
                    w.proc.kill()
                    w.proc.wait()
                break
            w.close()
        if interruption is not None:
            raise interruption

    def stop(self):
        super().stop()
        for w in list(self.workers):
            if w.task is not None and w.started:
                w.interrupt()

    def pids(self) -> dict[int, int]:
        """{task index: PID of the worker training it} for the tasks being trained now."""
        return {w.task.index: w.pid for w in self.workers if w.task is not None}


# ---------------------------------------------------------------------- the worker


_busy = False  # a point is being trained: a signal stops it
_stop = False  # a signal asked the current point to stop


def _on_signal(signum, frame):
    global _stop
    if _busy:
        from . import pointrun

        _stop = True
        pointrun.request_stop()


def _snapshot() -> dict:
    """What a point may change in the worker's state and the next point must not see."""
    from . import process

    return {"cwd": os.getcwd(), "env": dict(os.environ),
            "state": {k: v for k, v in vars(process.State).items() if not k.startswith("__")}}


def _restore(snap: dict) -> None:
    from . import process

    try:
        os.chdir(snap["cwd"])
    except OSError:
        pass
    if dict(os.environ) != snap["env"]:
        os.environ.clear()
        os.environ.update(snap["env"])
    for k, v in snap["state"].items():
        setattr(process.State, k, v)


def _train(point_dict: dict, cwd: str, reporting: bool, inbox, outbox, parent: int) -> dict:
    """One point, with the worker's state put back afterwards; its Outcome as a dict."""
    import traceback
    import warnings

    import numpy as np

    from . import pointrun

    global _busy, _stop

    import select
    from dataclasses import fields

    names = None
    ended = None  # the command pipe, watched while a point trains without reports
    if inbox is not None and not reporting and hasattr(select, "poll"):
        ended = select.poll()
        ended.register(inbox.fileno(), select.POLLIN)

    def on_epoch(rec):
        nonlocal names
        # a signal, the driver gone, or its end of the pipe closed (it is shutting down; nothing
        # else comes while a point trains without reports): checkpoint and stop
        if _stop or os.getppid() != parent or (ended is not None and ended.poll(0)):
            pointrun.request_stop()
            return None
        if not reporting:
            return None
        try:
            names = names or [f.name for f in fields(rec)]
            outbox.send(("epoch", tuple([getattr(rec, n) for n in names])))
            kind, message = inbox.recv()
        except (EOFError, OSError):  # the driver is gone
            pointrun.request_stop()
            return None
        return message

    snap = _snapshot()
    np_err = np.geterr()
    try:
        with warnings.catch_warnings():
            os.chdir(cwd)
            outcome = pointrun.train_point(pointrun.Point(**point_dict), report=on_epoch)
        return outcome.to_dict()
    except Exception:  # noqa: BLE001 (a bug: as nncli train, a traceback and exit 1)
        return pointrun.Outcome(1, "", traceback.format_exc()).to_dict()
    finally:
        _busy = _stop = False
        np.seterr(**np_err)
        _restore(snap)


def main(argv: list[str]) -> int:
    """``python -m nncli.workers RFD WFD``: train the points the driver sends until it closes RFD."""
    global _busy, _stop

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    from multiprocessing.connection import Connection

    from . import process

    process.fit_the_address_space()  # as nncli's own start-up, before numpy loads
    inbox = Connection(int(argv[1]), writable=False)
    outbox = Connection(int(argv[2]), readable=False)
    parent = os.getppid()
    from . import config, job, pointrun  # noqa: F401 (imported once, for every point)

    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            return 0
        if msg[0] != "task":
            continue
        _, point_dict, cwd, reporting = msg
        _stop = False
        _busy = True
        try:
            outbox.send(("started",))
            result = _train(point_dict, cwd, reporting, inbox, outbox, parent)
            outbox.send(("done", result))
        except (BrokenPipeError, EOFError, OSError):
            return 0  # the driver is gone
        finally:
            _busy = False


if __name__ == "__main__":
    sys.exit(main(sys.argv))
