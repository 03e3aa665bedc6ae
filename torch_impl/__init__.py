"""The PyTorch counterpart: the same model as embeddings trained by autograd."""

from torch_impl.model import MFModule, TorchMatrixFactorization

__all__ = ["MFModule", "TorchMatrixFactorization"]
