"""mfrec: the slides' latent factor model as a Numba reference and a PyTorch counterpart."""

__version__ = "0.1.0"
