"""mfrec: the slides' latent factor model as a Numba reference and a PyTorch counterpart."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mfrec")  # pyproject.toml's version, the only literal
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
