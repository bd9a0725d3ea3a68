"""The nncli process, as distinct from its commands: what SIGINT and SIGTERM do at every
moment, and the standard streams. Standard library only, so that the CLI can set it up
before anything slow loads.

- While the modules load, both signals are held pending (not lost); :func:`interrupt_on_signals`
  then makes the first one raise KeyboardInterrupt (later ones change nothing, so clean-up
  finishes), which every command turns into one line and exit 130.
- Once a command's result (or its error line) is out, both are ignored: the interpreter's
  shutdown would otherwise put back the default action, and a late SIGTERM would kill a
  finished command with 143.
- Closed standard descriptors become /dev/null (:func:`standard_streams`).
"""

from __future__ import annotations

import sys


def hold_signals_while_loading() -> None:
    """As the ``nncli`` console script, hold SIGINT and SIGTERM pending (not lost) while the
    modules load; ``python -m nncli`` does the same first thing in __main__.py. main()
    unblocks them once its handler is in place, so an interruption of the start-up is one
    line and exit 130 like any other. Imported any other way (tests, a library user), the
    signals are left alone."""
    import os
    import signal

    if (hasattr(signal, "pthread_sigmask") and getattr(sys.modules.get("__main__"), "__spec__", None) is None
            and os.path.basename(sys.argv[0] if sys.argv else "") == "nncli"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


# below this address-space limit (ulimit -v), nncli's libraries are told to reserve less (see below)
SMALL_ADDRESS_SPACE = 2 << 30
# below this one, numpy, pandas and OpenBLAS may not even load (OpenBLAS then ends the process
# with its own message and exit 1): nncli refuses to start, with one line (measured: ~350 MiB
# for training the xor config with one BLAS thread)
MIN_ADDRESS_SPACE = 400 << 20


def fit_the_address_space() -> None:
    """Under a small ``ulimit -v`` (RLIMIT_AS below :data:`SMALL_ADDRESS_SPACE`), before numpy
    and pandas load: OpenBLAS gets one thread (each thread reserves its own buffers, and
    OpenBLAS ends the process with exit 1 when one cannot be had) and Arrow (which pandas uses
    for text columns) the system allocator (its default pool reserves ~1 GiB of address space
    up front). Variables the user set are kept. No limit: nothing changes."""
    import os

    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, AttributeError, OSError, ValueError):
        return
    if soft == resource.RLIM_INFINITY or soft >= SMALL_ADDRESS_SPACE or "numpy" in sys.modules:
        return
    if soft < MIN_ADDRESS_SPACE:
        try:
            print(f"nncli: error: nncli needs at least {MIN_ADDRESS_SPACE >> 20} MiB of address space to load numpy and "
                  f"pandas, and ulimit -v allows {soft >> 20} MiB; raise the limit (ulimit -v {MIN_ADDRESS_SPACE >> 10})",
                  file=sys.stderr, flush=True)
        except (OSError, ValueError, AttributeError):
            pass
        os._exit(2)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


class State:
    """What main() set up; in-process callers of ``app`` (the tests) keep their own handlers."""

    active = False  # main() runs this process: the handling above is installed
    interrupted = False  # the one KeyboardInterrupt was raised (or _signals_call's handler ran)
    done = False  # the result is out: SIGINT and SIGTERM are ignored
    told = False  # the line of this exit (an error, or "interrupted") was written


def interrupt_once(signum, frame):
    if State.interrupted or State.done:
        return
    State.interrupted = True
    raise KeyboardInterrupt


def interrupt_on_signals() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt (once), then are unblocked: a signal that
    arrived while the modules loaded is raised here. A signal the parent ignores (``nohup``,
    ``&`` in a script) stays ignored, as Python itself does for SIGINT."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, interrupt_once)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def result_out() -> None:
    """The command's result, or its error line, is out: from here SIGINT and SIGTERM change
    nothing (ignored, which, unlike a handler, survives the interpreter's shutdown)."""
    if not State.active:
        return
    import signal

    State.done = True
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def interrupted_by(e: BaseException) -> bool:
    """Whether ``e`` comes of a KeyboardInterrupt (Python 3.11 turns one raised while a
    ``class`` statement runs, in a module being imported, into a RuntimeError)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False



def standard_streams() -> None:
    """Closed standard descriptors (``>&-``, ``2>&-``, ``<&-``) become /dev/null, as if the
    output had been discarded: a result printed on a closed stdout is dropped (exit 0), an
    error line with stderr closed goes nowhere (never to stdout, where Python would send
    ``print(file=None)``), and a file opened later can never take descriptor 1 or 2."""
    import os

    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            closed = False
        except OSError:
            closed = True
        if closed:
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:
                continue
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:  # closed when Python started
            # the descriptor is ours (now /dev/null) or, if it is open again, someone else's
            target = fd if closed else os.devnull
            setattr(sys, name, open(target, mode, encoding="utf-8", closefd=not closed))
