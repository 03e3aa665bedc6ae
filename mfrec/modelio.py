"""mfrec's one file format and its reader: model files and training checkpoints.

Every file is one ``.npz``: a ``meta`` entry (JSON: ``format``, ``version``, then what the kind
of file needs) and named arrays, written atomically by :func:`write_record` and read back,
format and version checked, by :func:`read_record`. Two kinds share it: model files
(``"mfrec-model"``: hyper-parameters, P, Q, biases, id maps, seen items, titles;
:func:`save_model` / :func:`load_model`) and the distributed trainer's checkpoints
(``"mfrec-checkpoint"``, :mod:`mfrec.torch_impl.distributed`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mfrec._internal import atomic_write

FORMAT = "mfrec-model"
FORMAT_VERSION = 1
KINDS = {"mfrec-model": "model file", "mfrec-checkpoint": "checkpoint"}
"""Each format's name in error messages."""
ARRAYS = (
    "P", "Q", "bu", "bi", "user_ids", "item_ids", "seen_indptr", "seen_indices", "title_ids",
    "title_names",
)  # fmt: skip


class ModelFileError(ValueError):
    """A model (or checkpoint) file is missing, corrupt, foreign or from a newer mfrec."""


def write_record(
    path: str | os.PathLike,
    fmt: str,
    version: int,
    meta: dict,
    arrays: dict[str, np.ndarray],
    parents: bool = False,
) -> Path:
    """Write ``meta`` (JSON, headed by ``format`` and ``version``) and ``arrays`` to one .npz,
    atomically and synced to disk (temp file beside ``path``, fsync, rename)."""
    path = Path(path)
    header = {"format": fmt, "version": version, **meta}
    with atomic_write(path, parents=parents) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(header)), **arrays)
        f.flush()
        os.fsync(f.fileno())
    return path


def read_record(path: str | os.PathLike, fmt: str, version: int) -> tuple[dict, dict]:
    """(meta, arrays) of an existing file of format ``fmt``, at most ``version``.

    Raises :class:`ModelFileError` naming the file when it is not an .npz, has no metadata,
    is of another format, or was written by a newer mfrec.
    """
    path = Path(path)
    what = KINDS[fmt]
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zip, pickle, CRC and format errors all mean "not ours or damaged"
        why = "it holds pickled Python objects" if "allow_pickle" in str(e) else str(e)
        raise ModelFileError(f"{path}: not an mfrec {what} ({why})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (KeyError, ValueError):
        raise ModelFileError(f"{path}: not an mfrec {what} (no metadata)") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise ModelFileError(f"{path}: not an mfrec {what} (format {got!r})")
    have = meta.get("version")
    if not isinstance(have, int) or have < 1:
        raise ModelFileError(f"{path}: corrupt {what} (format version {have!r})")
    if have > version:
        raise ModelFileError(
            f"{path}: written by a newer mfrec (format version {have}, "
            f"this one reads up to {version}); upgrade mfrec to read it"
        )
    return meta, arrays


def raw_id(value):
    """A raw id from an id array as a plain Python ``int`` or ``str`` (for printing and JSON)."""
    return value.item() if isinstance(value, np.generic) else value


def id_index(ids: np.ndarray, text) -> int | None:
    """Index of the raw id written as ``text`` in a sorted id array, or None when absent.

    Integer ids match the integer ``text`` denotes (``"007"`` is 7); text ids match exactly.
    """
    if ids.dtype.kind in "iu":
        try:
            key = int(str(text).strip())
        except ValueError:
            return None
    else:
        key = str(text)
    pos = int(np.searchsorted(ids, key))
    if pos < ids.shape[0] and ids[pos] == key:
        return pos
    hits = np.flatnonzero(ids == key)  # ids from an older file may not be sorted
    return int(hits[0]) if hits.size else None


def save_model(path: str | os.PathLike, model, user_ids, item_ids, titles=None) -> Path:
    """Write ``model`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    if not hasattr(model, "P"):
        raise ModelFileError(f"{path}: the model is not fitted; nothing to save")
    if not getattr(model, "factor_form", True):
        raise ModelFileError(
            f"{path}: cannot save a {type(model).__name__}: its predictions are not "
            "μ + bᵤ + bᵢ + Pᵤ·Qᵢ, and a model file holds only P, Q and the biases"
        )
    params = {
        k: (v.__name__ if isinstance(v, type) else v)
        for k, v in vars(model).items()
        if isinstance(v, (int, float, str, bool, type, type(None))) and not k.startswith("_")
    }
    meta = {
        "class": type(model).__name__,
        "params": params,
        "mu": float(model.mu),
        "biased": bool(model.biased),
    }
    titles = titles or {}
    t_ids = np.array(
        sorted(titles), dtype=None if titles and isinstance(next(iter(titles)), str) else np.int64
    )
    t_names = np.array([titles[t] for t in t_ids], dtype=np.str_)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory; give a file name for the model")
    if not path.parent.is_dir():
        raise ModelFileError(f"{path}: cannot write the model (no folder {path.parent})")
    arrays = {
        "P": model.P,
        "Q": model.Q,
        "bu": model.bu,
        "bi": model.bi,
        "user_ids": np.asarray(user_ids),
        "item_ids": np.asarray(item_ids),
        "seen_indptr": model._seen_indptr,
        "seen_indices": model._seen_indices,
        "title_ids": t_ids,
        "title_names": t_names,
    }
    try:
        return write_record(path, FORMAT, FORMAT_VERSION, meta, arrays)
    except OSError as e:
        raise ModelFileError(f"{path}: cannot write the model ({e.strerror or e})") from None


def load_model(path: str | os.PathLike):
    """Load a model file; returns (model, user_ids, item_ids, titles)."""
    from mfrec.reference.mf import FactorModel

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    meta, arrays = read_record(path, FORMAT, FORMAT_VERSION)
    for key in ("mu", "biased", "params"):
        if key not in meta:
            raise ModelFileError(f"{path}: corrupt model file (metadata lacks {key!r})")
    missing = sorted(set(ARRAYS) - set(arrays))
    if missing:
        raise ModelFileError(f"{path}: corrupt model file (missing {', '.join(missing)})")
    _check_shapes(path, arrays)
    model = FactorModel()
    model.P, model.Q = arrays["P"], arrays["Q"]
    model.bu, model.bi = arrays["bu"], arrays["bi"]
    model.mu, model.biased = float(meta["mu"]), bool(meta["biased"])
    model._seen_indptr, model._seen_indices = arrays["seen_indptr"], arrays["seen_indices"]
    model.params = meta["params"]
    for key in ("r_min", "r_max", "r_mean_"):  # the training rating scale, for clipping
        if isinstance(model.params.get(key), (int, float)):
            setattr(model, key, float(model.params[key]))
    titles = dict(zip(arrays["title_ids"].tolist(), arrays["title_names"].tolist(), strict=True))
    return model, arrays["user_ids"], arrays["item_ids"], titles


def _check_shapes(path: Path, a: dict) -> None:
    """Every array agrees with P and Q in shape, indices are in range, factors are finite."""
    P, Q = a["P"], a["Q"]
    n_users, n_items = P.shape[0] if P.ndim == 2 else -1, Q.shape[0] if Q.ndim == 2 else -1
    expected = {
        "Q": (n_items, P.shape[-1] if P.ndim == 2 else -1),
        "bu": (n_users,),
        "bi": (n_items,),
        "user_ids": (n_users,),
        "item_ids": (n_items,),
        "seen_indptr": (n_users + 1,),
    }
    bad = [k for k, shape in expected.items() if a[k].shape != shape]
    if P.ndim != 2 or bad:
        raise ModelFileError(f"{path}: corrupt model file (inconsistent shapes: {bad or ['P']})")
    indptr, indices = a["seen_indptr"], a["seen_indices"]
    if (
        indptr[0] != 0
        or indptr[-1] != indices.shape[0]
        or np.any(np.diff(indptr) < 0)
        or (indices.size and (indices.min() < 0 or indices.max() >= n_items))
    ):
        raise ModelFileError(f"{path}: corrupt model file (seen-items index out of range)")
    if not all(np.all(np.isfinite(a[k])) for k in ("P", "Q", "bu", "bi")):
        raise ModelFileError(f"{path}: corrupt model file (NaN or inf in the factors)")
