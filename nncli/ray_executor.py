"""``nncli sweep --executor ray``: each point is a Ray task (the nncli[ray] extra).

The driver (this process) connects to a Ray cluster (``--address``, else RAY_ADDRESS, else a
local Ray started for the sweep and shut down after it). Each point is one Ray task that
runs :func:`nncli.pointrun.train_point` on a long-lived Ray worker (which imports nncli
once). The workers need not share a file system with the driver:

- the files a point reads (the base config, data.train/val/test, an .npz model.init) go to
  the cluster once: the driver puts the bytes of each distinct file in Ray's object store
  and passes references;
- the task trains into a temporary directory of its worker and returns the outcome and the
  run directory's files; the driver writes them under the sweep directory atomically (a
  temporary directory inside the sweep directory, then one rename to the run's name), and
  the ``--json`` line names the driver's path. The sweep directory is then exactly what a
  local sweep writes.

At most ``jobs`` tasks are in flight (pull model: the next point is taken only when a slot
is free); set --jobs to the cluster's CPUs to use them all. A task whose worker or node dies
is retried ``retries`` times by Ray, then recorded as failed; an nncli error inside a point
is the point's outcome (exit 2 and its line), never retried. Pruning reports: each epoch's
record goes from the task to a mailbox actor, the driver's ``report`` answers, and the task
waits for the answer (one round trip per epoch; only when a report callback is given).
Stop (Ctrl-C): finished runs are written, running and pending tasks are cancelled (a
cancelled point leaves no run directory).

Ray is imported only here, when this executor is made.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, ConfigError
from .executors import Executor, Task

MISSING = "nncli sweep --executor ray needs Ray: pip install 'nncli[ray]'"

#: test-only hook (tests/test_ray.py): a directory on the Ray workers' machine; each attempt of
#: a point appends "start PID" to DIR/<point name>.pid when it starts, and "epoch PID" after its
#: first epoch, so that a test can kill the Ray worker running a point by PID
TEST_PID_DIR = "NNCLI_RAY_TEST_PIDS"

#: seconds the driver waits for anything (a finished task, an epoch report) before looking at stop()
_TICK = 0.2


def import_ray():
    """The ray module, or the one line naming the extra."""
    try:
        import ray
    except ImportError:
        raise ConfigError(MISSING) from None
    return ray


class RayExecutor(Executor):
    """Tasks on a Ray cluster, at most ``jobs`` in flight."""

    reports = True

    def __init__(self, jobs: int, address: Optional[str] = None, retries: int = 2):
        self.ray = import_ray()  # a missing extra is said before anything is written
        self.jobs = max(1, jobs)
        self.address = address
        if address or os.environ.get("RAY_ADDRESS"):
            _probe(address or os.environ["RAY_ADDRESS"], f"--address {address}" if address else f"RAY_ADDRESS={os.environ['RAY_ADDRESS']}")
        self.retries = max(0, retries)
        self.running: dict = {}  # ObjectRef -> Task
        self.report_seconds: list[float] = []  # driver-side time of each epoch report (measured)
        self.reported: dict[int, int] = {}  # task index -> the last epoch given to report

    # ------------------------------------------------------------------ connecting

    def _connect(self) -> bool:
        """ray.init: --address, else RAY_ADDRESS, else a local Ray for this sweep. True if
        this call connected (the executor then disconnects, and a local Ray is shut down)."""
        import logging

        ray = self.ray
        if ray.is_initialized():
            return False
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        quiet = dict(logging_level=logging.ERROR, log_to_driver=False, configure_logging=True)
        handlers = _signal_handlers()  # ray.init replaces the SIGTERM handler: the sweep's own is put back
        try:
            if address:
                ray.init(address=address, **quiet)
            else:
                ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        except Exception as e:  # ConnectionError, a refused token, a bad address...
            from .view import one_line

            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise ConfigError(f"--executor ray: cannot start or join {where}: {one_line(str(e))[:300]}") from None
        finally:
            _restore(handlers)
        return True

    # ------------------------------------------------------------------ running

    def run(self, tasks, done, report=None):
        ray = self.ray
        connected = self._connect()
        mailbox = None
        try:
            remote = ray.remote(max_retries=self.retries, retry_exceptions=False)(_train_on_worker)
            if report is not None:
                mailbox = _mailbox(ray)
            self._loop(ray, remote, mailbox, iter(tasks), done, report)
        finally:
            for ref in list(self.running):  # an error in the driver: nothing keeps running on the cluster
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
            self.running.clear()
            if mailbox is not None:
                try:
                    ray.kill(mailbox)
                except Exception:
                    pass
            if connected:
                ray.shutdown()

    def _loop(self, ray, remote, mailbox, pending, done, report):
        data: dict[str, object] = {}  # each distinct input file: its ObjectRef (put once)
        by_index: dict[int, Task] = {}
        take = mailbox.take.remote() if mailbox is not None else None
        exhausted = False
        while True:
            while not exhausted and len(self.running) < self.jobs and not self.stopping:
                t = next(pending, None)
                if t is None:
                    exhausted = True
                    break
                ref = self._submit(ray, remote, mailbox, t, data)
                if ref is None:  # the point could not even be sent (its files): its outcome is set
                    done(t)
                    continue
                self.running[ref] = t
                by_index[t.index] = t
            if self.stopping:
                self._stop_running(ray, done)
                return
            if exhausted and not self.running:
                return
            waiting = list(self.running) + ([take] if take is not None else [])
            ready, _ = ray.wait(waiting, num_returns=1, timeout=_TICK)
            for ref in ready:
                if ref == take:
                    take = self._answer(ray, mailbox, ray.get(take), by_index, report)
                    continue
                t = self.running.pop(ref)
                self._finish(ray, ref, t)
                done(t)

    def _submit(self, ray, remote, mailbox, t: Task, data: dict):
        from .pointrun import input_files

        if t.point.resume is not None:
            t.returncode, t.stderr = EXIT_USAGE, "nncli: error: resuming a run is not supported on the Ray executor; use --executor local"
            return None
        try:
            paths = input_files(t.point)
            for p in paths:
                if p not in data:
                    data[p] = ray.put(Path(p).read_bytes())
        except OSError as e:
            t.returncode, t.stderr = EXIT_USAGE, f"nncli: error: {e.filename or 'nncli sweep'}: {e.strerror or e}"
            return None
        except ConfigError as e:
            t.returncode, t.stderr = EXIT_USAGE, f"nncli: error: {e}"
            return None
        refs = {p: data[p] for p in paths}
        name = t.point.name or f"point-{t.index + 1}"
        return remote.options(name=f"nncli:{name}").remote(t.point.to_dict(), refs, mailbox, t.index)

    def _answer(self, ray, mailbox, records, by_index, report):
        """Answer every epoch record the mailbox holds; return the next take.

        A task retried after its worker died trains its epochs again (the same ones: the same
        seed); those ``report`` saw already are answered None without asking it again (every
        earlier answer was None, or the task would have been pruned and not retried)."""
        import time

        answers = []
        for key, index, rec in records:
            t0 = time.perf_counter()
            t = by_index.get(index)
            msg = None
            if t is not None and rec.epoch > self.reported.get(index, 0):
                self.reported[index] = rec.epoch
                msg = report(t, rec)
            self.report_seconds.append(time.perf_counter() - t0)
            answers.append((key, msg))
        return mailbox.take.remote(answers)  # one call: the answers, and the next records

    def _finish(self, ray, ref, t: Task) -> None:
        """The task's outcome, its run directory written under the sweep directory."""
        try:
            outcome, run_name, run_files = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            t.returncode, t.stderr = EXIT_INTERRUPTED, "nncli: error: interrupted; the point's Ray task was cancelled"
            return
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
                ray.exceptions.OwnerDiedError, ray.exceptions.LocalRayletDiedError) as e:
            n = self.retries + 1
            t.returncode, t.stderr = EXIT_FAILED, f"the Ray worker died {n} time{'s' if n != 1 else ''} ({_first_line(e)})"
            return
        except ray.exceptions.RayError as e:  # a bug on the worker, an unreachable actor: not an nncli outcome
            t.returncode, t.stderr = EXIT_FAILED, f"the point's Ray task failed ({_first_line(e)})"
            return
        t.returncode, t.stdout, t.stderr = outcome["returncode"], outcome["stdout"], outcome["stderr"]
        if run_name is None:
            return
        runs_dir = Path(t.point.runs_dir)
        target = runs_dir / run_name
        try:
            _write_run(runs_dir, run_name, run_files)
        except OSError as e:
            t.returncode, t.stdout = EXIT_USAGE, ""
            t.stderr = f"nncli: error: {target}: cannot write the run from the Ray worker ({e.strerror or e})"
            return
        worker_dir = None
        if t.stdout.strip():
            try:
                line = json.loads(t.stdout)
                worker_dir = line.get("run_dir")
                line["run_dir"] = str(target)
                t.stdout = json.dumps(line, ensure_ascii=False)
            except ValueError:
                pass
        if worker_dir and t.stderr:
            t.stderr = t.stderr.replace(worker_dir, str(target))

    def _stop_running(self, ray, done) -> None:
        """Stop: write the runs that finished, cancel the others (each reported interrupted)."""
        import time

        refs = list(self.running)
        if refs:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in ready:
                t = self.running.pop(ref)
                self._finish(ray, ref, t)
                done(t)
        for ref in list(self.running):
            try:
                ray.cancel(ref)
            except Exception:
                pass
        deadline = time.monotonic() + 5
        while self.running and time.monotonic() < deadline:
            ready, _ = ray.wait(list(self.running), num_returns=1, timeout=0.5)
            for ref in ready:
                t = self.running.pop(ref)
                self._finish(ray, ref, t)  # cancelled (130), or it finished just before
                done(t)
        for ref, t in list(self.running.items()):  # still not gone: forced, and reported interrupted
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
            t.returncode, t.stderr = EXIT_INTERRUPTED, "nncli: error: interrupted; the point's Ray task was cancelled"
            del self.running[ref]
            done(t)


def _signal_handlers() -> dict:
    """The SIGINT and SIGTERM handlers of this process (none off the main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore(handlers: dict) -> None:
    import signal

    for sig, h in handlers.items():
        if h is not None and signal.getsignal(sig) is not h:
            signal.signal(sig, h)


def _probe(address: str, where: str) -> None:
    """A HOST:PORT address nothing listens on is refused at once (ray.init would retry for
    minutes), before the sweep directory is written; other addresses are Ray's to judge."""
    import re
    import socket

    if address.startswith("ray://"):
        raise ConfigError(f"{where}: Ray Client addresses (ray://) are not supported; run nncli sweep on a node of "
                          "the cluster with --address HEAD:PORT (the head's GCS address, as ray start --head prints it)")
    m = re.fullmatch(r"\[?([^\[\]/]+?)\]?:(\d{1,5})", address)
    if m is None:
        return
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=5).close()
    except (OSError, ValueError, OverflowError) as e:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise ConfigError(f"{where}: no Ray cluster answers there ({why}); start one with "
                          f"`ray start --head --port {m.group(2)}`, or give the address of a running one") from None


def _first_line(e: BaseException) -> str:
    from .view import one_line

    text = str(e).strip().splitlines()
    return type(e).__name__ + (f": {one_line(text[0])[:200]}" if text else "")


def _write_run(runs_dir: Path, run_name: str, run_files: dict[str, bytes]) -> None:
    """The run directory ``runs_dir/run_name`` with ``run_files`` (relative path -> bytes),
    written into a temporary directory in ``runs_dir`` and renamed whole."""
    target = runs_dir / run_name
    if os.path.lexists(target) or "/" in run_name or run_name.startswith("."):
        raise OSError(17, "a run directory of that name exists already" if os.path.lexists(target) else "bad run name")
    runs_dir.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".ray-", dir=runs_dir)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # as os.mkdir makes a run directory
        for rel, data in sorted(run_files.items()):
            path = Path(tmp, rel)
            if path.resolve().parent != Path(tmp).resolve() and Path(tmp).resolve() not in path.resolve().parents:
                raise OSError(22, f"file {rel!r} would be written outside the run directory")
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------- the Ray side


def _train_on_worker(point: dict, refs: dict, mailbox, index: int):
    """The Ray task of one point (runs on a Ray worker): train it into a temporary directory,
    return (the outcome as a dict, the run directory's name or None, its files)."""
    import ray

    from .pointrun import Point, train_point

    files = dict(zip(refs, ray.get(list(refs.values())))) if refs else {}
    p = Point(**point)
    hook = os.environ.get(TEST_PID_DIR)
    if hook:
        _hook(hook, p, "start")
    first = [True]

    def to_driver(rec):
        """Each epoch's record to the driver's report (through the mailbox); its answer."""
        if hook and first[0]:
            first[0] = False
            _hook(hook, p, "epoch")
        return ray.get(mailbox.post.remote(index, rec)) if mailbox is not None else None

    report = to_driver if mailbox is not None or hook else None
    _remove_dead_workers_dirs()
    tmp = tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-")
    try:
        p.runs_dir = tmp
        out = train_point(p, report=report, files=files)
        runs = [d for d in os.listdir(tmp) if os.path.isdir(os.path.join(tmp, d))]
        if not runs:
            return out.to_dict(), None, {}
        run = os.path.join(tmp, runs[0])
        run_files = {}
        for root, _dirs, names in os.walk(run):
            for n in names:
                full = os.path.join(root, n)
                with open(full, "rb") as f:
                    run_files[os.path.relpath(full, run)] = f.read()
        return out.to_dict(), runs[0], run_files
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: a task trains in a temporary directory named nncli-ray-<worker PID>-...
_TMP_PREFIX = "nncli-ray-"


def _remove_dead_workers_dirs() -> None:
    """Remove the temporary directories of Ray workers of this machine that died in a point
    (killed, or their node lost: their own clean-up never ran)."""
    import re

    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return
    for n in names:
        m = re.fullmatch(re.escape(_TMP_PREFIX) + r"(\d+)-\w+", n)
        if m is None or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root, n), ignore_errors=True)
        except OSError:  # alive, or someone else's
            pass


def _hook(directory: str, p, what: str) -> None:
    with open(os.path.join(directory, f"{p.name or 'point'}.pid"), "a", encoding="utf-8") as f:
        f.write(f"{what} {os.getpid()}\n")


class _Mailbox:
    """An async actor between the tasks (post: an epoch record, wait for the answer) and the
    driver (take: hand over the answers to the last records, then wait for the next ones)."""

    def __init__(self):
        import asyncio

        self.inbox: list = []
        self.waiters: dict = {}
        self.new = asyncio.Event()
        self.count = 0

    async def post(self, index, rec):
        import asyncio

        self.count += 1
        key = self.count
        fut = asyncio.get_running_loop().create_future()
        self.waiters[key] = fut
        self.inbox.append((key, index, rec))
        self.new.set()
        return await fut

    async def take(self, answers=()):
        """Give the driver's answers to the tasks waiting for them, then wait for records."""
        for key, msg in answers:
            fut = self.waiters.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        while not self.inbox:
            self.new.clear()
            await self.new.wait()
        out, self.inbox = self.inbox, []
        return out


def _mailbox(ray):
    """The mailbox actor, on the driver's node when it can be (no CPU taken)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    actor = ray.remote(num_cpus=0, max_concurrency=1000)(_Mailbox)
    return actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True)).remote()
