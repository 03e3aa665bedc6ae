"""Model files: one ``.npz`` with a format version, the hyper-parameters, arrays and id maps."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

FORMAT = "mfrec-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, corrupt, foreign or from a newer mfrec."""


def save_model(path: str | os.PathLike, model, user_ids, item_ids, titles=None) -> Path:
    """Write ``model`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    params = {
        k: (v.__name__ if isinstance(v, type) else v)
        for k, v in vars(model).items()
        if isinstance(v, (int, float, str, bool, type, type(None))) and not k.startswith("_")
    }
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "class": type(model).__name__,
        "params": params,
        "mu": float(model.mu),
        "biased": bool(model.biased),
    }
    titles = titles or {}
    t_ids = np.array(sorted(titles), dtype=np.int64)
    t_names = np.array([titles[t] for t in t_ids], dtype=np.str_)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                meta=np.array(json.dumps(meta)),
                P=model.P,
                Q=model.Q,
                bu=model.bu,
                bi=model.bi,
                user_ids=np.asarray(user_ids),
                item_ids=np.asarray(item_ids),
                seen_indptr=model._seen_indptr,
                seen_indices=model._seen_indices,
                title_ids=t_ids,
                title_names=t_names,
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_model(path: str | os.PathLike):
    """Load a model file; returns (model, user_ids, item_ids, titles)."""
    from reference.mf import FactorModel

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile, pickle and format errors all mean "not ours"
        raise ModelFileError(f"{path}: not an mfrec model file ({e})") from None
    try:
        meta = json.loads(str(arrays["meta"]))
    except (KeyError, ValueError):
        raise ModelFileError(f"{path}: not an mfrec model file (no metadata)") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an mfrec model file (format {meta.get('format')!r})")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written by a newer mfrec (format version {meta['version']}, "
            f"this one reads up to {FORMAT_VERSION})"
        )
    model = FactorModel()
    model.P, model.Q = arrays["P"], arrays["Q"]
    model.bu, model.bi = arrays["bu"], arrays["bi"]
    model.mu, model.biased = meta["mu"], meta["biased"]
    model._seen_indptr, model._seen_indices = arrays["seen_indptr"], arrays["seen_indices"]
    model.params = meta["params"]
    titles = dict(zip(arrays["title_ids"].tolist(), arrays["title_names"].tolist(), strict=True))
    return model, arrays["user_ids"], arrays["item_ids"], titles
