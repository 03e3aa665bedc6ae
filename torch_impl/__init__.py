"""The PyTorch counterpart: the same model as embeddings trained by autograd."""

from mfrec.torch_impl.model import MFModule, TorchMatrixFactorization

__all__ = ["MFModule", "TorchMatrixFactorization"]
