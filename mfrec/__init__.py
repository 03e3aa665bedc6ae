"""mfrec: the slides' latent factor model as a Numba reference and a PyTorch counterpart."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mfrec")  # pyproject.toml's version, the only literal
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"


def load(path):
    """The model in a file written by ``model.save(path)`` or ``mfrec train --save``.

    It is a :class:`mfrec.reference.FactorModel` (μ + bᵤ + bᵢ + Pᵤ·Qᵢ, whatever class was
    saved) with the raw id maps ``user_ids_``/``item_ids_`` and the titles ``titles_``, so
    ``predict``, ``recommend`` and ``similar_items`` take raw ids as the saved model did.
    Raises :class:`mfrec.modelio.ModelFileError` naming the file when it is not a model file.
    """
    from mfrec.modelio import load_model

    model, user_ids, item_ids, titles = load_model(path)
    model.user_ids_, model.item_ids_, model.titles_ = user_ids, item_ids, titles
    return model
