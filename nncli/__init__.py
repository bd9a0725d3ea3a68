"""nncli: train small neural networks from the command line, as the lecture teaches them.

The library never prints: ``import nncli`` works without a terminal, and the CLI
(nncli.cli) renders everything the library returns or yields.

From Python (docs/api.md): ``nncli.train(config, overrides=..., runs_dir=...)`` and
``nncli.load_run(path)`` return an :class:`nncli.api.Run`; errors are those of
:mod:`nncli.errors` (every one a :class:`NncliError`). Importing nncli stays cheap: numpy,
pandas and matplotlib are imported when first used, not here.
"""

from .errors import ConfigError, DataError, JobFailed, NncliError, OutputError, RunError

__version__ = "0.1.0"
__all__ = ["train", "load_run", "Run", "NncliError", "ConfigError", "DataError", "RunError", "OutputError",
           "JobFailed", "__version__"]

_API = ("train", "load_run", "Run")  # nncli.api, imported when first used


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'nncli' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
