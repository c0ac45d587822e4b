"""deepprs: deep learning for statistical genetics, with honest linear baselines.

The public Python API mirrors the CLI: every command is a function or estimator here.
"""

__version__ = "0.1.0"

from deepprs.errors import DeepPRSError, InputError

__all__ = ["__version__", "DeepPRSError", "InputError"]
