"""``python -m nncli``: the nncli program (nncli.cli.main)."""

import signal

# First of all, hold SIGINT and SIGTERM pending (not lost) while nncli's modules load: main()
# unblocks them once its handler is in place, so an interruption of the start-up is one line
# and exit 130 like any other (the nncli console script does the same in nncli.cli).
if hasattr(signal, "pthread_sigmask"):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

from .cli import main  # noqa: E402

main()
