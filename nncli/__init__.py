"""nncli: train small neural networks from the command line, as the lecture teaches them.

The library never prints: ``import nncli`` works without a terminal, and the CLI
(nncli.cli) renders everything the library returns or yields.

From Python (docs/api.md): ``nncli.train(config, overrides=..., runs_dir=...)`` and
``nncli.load_run(path)`` return an :class:`nncli.api.Run`; errors are those of
:mod:`nncli.errors` (every one a :class:`NncliError`). Importing nncli stays cheap: numpy,
pandas and matplotlib are imported when first used, not here.
"""

import sys as _sys
import types as _types

from .errors import ConfigError, DataError, JobFailed, NncliError, OutputError, RunError

__version__ = "0.1.0"
__all__ = ["train", "load_run", "Run", "NncliError", "ConfigError", "DataError", "RunError", "OutputError",
           "JobFailed", "__version__"]

_API = ("load_run", "Run")


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'nncli' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(_types.ModuleType):
    """nncli's module type, for one name: ``nncli.train`` is the function :func:`nncli.api.train`,
    although nncli.train is also the submodule of the Trainer. Importing a submodule binds its
    name in the package (``nncli.train = <module nncli.train>``) once it is loaded; a property
    keeps the function there (the module stays importable: ``from nncli.train import Trainer``)."""

    @property
    def train(self):
        from .api import train

        return train

    @train.setter
    def train(self, value):  # the import system binding the submodule: it is in sys.modules all the same
        pass


_sys.modules[__name__].__class__ = _Package
