"""nncli: train small neural networks from the command line, as the lecture teaches them.

The library never prints: ``import nncli`` works without a terminal, and the CLI
(nncli.cli) renders everything the library returns or yields.
"""

__version__ = "0.1.0"
