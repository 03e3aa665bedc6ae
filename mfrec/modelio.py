"""mfrec's one file format and its reader: model files and training checkpoints.

Every file is one ``.npz``: a ``meta`` entry (JSON: ``format``, ``version``, then what the kind
of file needs) and named arrays, written atomically by :func:`write_record` and read back,
format and version checked, by :func:`read_record`. Two kinds share it: model files
(``"mfrec-model"``: hyper-parameters, P, Q, biases, id maps, seen items, titles;
:func:`save_model` / :func:`load_model`) and the distributed trainer's checkpoints
(``"mfrec-checkpoint"``, :mod:`mfrec.torch_impl.distributed`). A model that is more than its
factors (a network, a liked-or-not model) is saved as a state record: the same file at format
version 2 with its class and state added (:mod:`mfrec.modelstate`).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import stat
from pathlib import Path

import numpy as np

from mfrec._internal import atomic_write, check_npz

FORMAT = "mfrec-model"
FORMAT_VERSION = 1
KINDS = {"mfrec-model": "model file", "mfrec-checkpoint": "checkpoint"}
"""Each format's name in error messages."""
EXPANSION_CAP = 64
"""A file's members may expand to at most this many times the file's size (an uncompressed
``.npz`` expands to about 1x); checked from the zip directory before anything is inflated."""
SCALE_PARAMS = ("r_min", "r_max", "r_mean_", "scale_min", "scale_max")
"""Hyper-parameters that, when present, must be finite numbers (the rating scale)."""
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
        np.savez(f, meta=np.array(json.dumps(header)), **arrays)  # pyright: ignore[reportArgumentType]  (a **dict may fill savez's allow_pickle)
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
        st = path.stat()
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the zip reader forever
        raise ModelFileError(f"{path}: is not a regular file, expected an mfrec {what}")
    size = st.st_size
    why = check_npz(path, EXPANSION_CAP * size + (1 << 20))
    if why is not None:
        raise ModelFileError(f"{path}: not an mfrec {what} ({why})")
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
    if isinstance(have, bool) or not isinstance(have, int) or have < 1:
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
    # A state record for a model that is more than its factors (or, SVD++, its features too);
    # a model whose state is optional (the default blend: only with a date part) says so.
    state = hasattr(model, "state") and getattr(model, "saves_state", True)
    if not getattr(model, "factor_form", True) and not state:
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
    version = FORMAT_VERSION
    if state:  # a model that is more than its factors: its state record (mfrec.modelstate)
        from mfrec.modelstate import STATE_VERSION, state_record

        extra_meta, extra_arrays = state_record(model)
        meta, arrays, version = {**meta, **extra_meta}, {**arrays, **extra_arrays}, STATE_VERSION
    try:
        return write_record(path, FORMAT, version, meta, arrays)
    except OSError as e:
        raise ModelFileError(f"{path}: cannot write the model ({e.strerror or e})") from None


def load_model(path: str | os.PathLike):
    """Load a model file; returns (model, user_ids, item_ids, titles)."""
    from mfrec.reference.mf import FactorModel

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    try:
        meta, arrays = read_record(path, FORMAT, FORMAT_VERSION)
    except ModelFileError as newer:  # a state record (mfrec.modelstate) is at a later version
        from mfrec.modelstate import STATE_KIND, STATE_VERSION

        meta, arrays = read_record(path, FORMAT, STATE_VERSION)
        if meta.get("kind") != STATE_KIND:
            raise newer from None
    _check_meta(path, meta)
    missing = sorted(set(ARRAYS) - set(arrays))
    if missing:
        raise ModelFileError(f"{path}: corrupt model file (missing {', '.join(missing)})")
    _check_dtypes(path, arrays)
    _check_shapes(path, arrays)
    model = FactorModel()
    model.P, model.Q = arrays["P"], arrays["Q"]
    model.bu, model.bi = arrays["bu"], arrays["bi"]
    model.mu, model.biased = float(meta["mu"]), meta["biased"]
    model._seen_indptr, model._seen_indices = arrays["seen_indptr"], arrays["seen_indices"]
    model.params = meta["params"]
    for key in ("r_min", "r_max", "r_mean_"):  # the training rating scale, for clipping
        if model.params.get(key) is not None:
            setattr(model, key, float(model.params[key]))
    titles = dict(zip(arrays["title_ids"].tolist(), arrays["title_names"].tolist(), strict=True))
    if meta.get("kind") is not None:
        from mfrec.modelstate import model_from_state

        try:
            model = model_from_state(path, meta, arrays, model)
        except ValueError as e:
            raise ModelFileError(str(e)) from None
    return model, arrays["user_ids"], arrays["item_ids"], titles


def _corrupt(path: Path, why: str) -> ModelFileError:
    return ModelFileError(f"{path}: corrupt model file ({why})")


def _finite_number(value) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _check_meta(path: Path, meta: dict) -> None:
    """``mu`` a finite number, ``biased`` a bool, ``params`` an object, the scale finite."""
    for key in ("mu", "biased", "params"):
        if key not in meta:
            raise _corrupt(path, f"metadata lacks {key!r}")
    if not _finite_number(meta["mu"]):
        raise _corrupt(path, f"mu must be a finite number, got {meta['mu']!r}")
    if not isinstance(meta["biased"], bool):
        raise _corrupt(path, f"biased must be true or false, got {meta['biased']!r}")
    params = meta["params"]
    if not isinstance(params, dict):
        raise _corrupt(path, f"params must be an object, got {type(params).__name__}")
    for key in SCALE_PARAMS:
        if params.get(key) is not None and not _finite_number(params[key]):
            raise _corrupt(path, f"params.{key} must be a finite number, got {params[key]!r}")


# What each array must hold: "f" real floats, "i" integers, "id" integers or text.
KINDS_OF_ARRAYS = {
    "P": "f", "Q": "f", "bu": "f", "bi": "f", "user_ids": "id", "item_ids": "id",
    "seen_indptr": "i", "seen_indices": "i", "title_ids": "id", "title_names": "U",
}  # fmt: skip
_KIND_WORDS = {"f": "real floats", "i": "integers", "id": "integer or text ids", "U": "text"}


def _check_dtypes(path: Path, a: dict) -> None:
    """Factors and biases real floats (not complex, not bool), indices integers, ids int/text."""
    for name, want in KINDS_OF_ARRAYS.items():
        kind = a[name].dtype.kind
        ok = {"f": "f", "i": "iu", "id": "iuU", "U": "U"}[want]
        if kind not in ok or (kind in "iu" and a[name].size and not _fits_int64(a[name])):
            raise _corrupt(path, f"{name} must hold {_KIND_WORDS[want]}, got dtype {a[name].dtype}")
    for name in ("user_ids", "item_ids"):
        ids = a[name]
        if ids.ndim == 1 and np.unique(ids).shape[0] != ids.shape[0]:
            values, counts = np.unique(ids, return_counts=True)
            dup = values[np.argmax(counts)]
            raise _corrupt(path, f"{name} repeats id {raw_id(dup)!r} {int(counts.max())} times")
    if a["title_ids"].shape != a["title_names"].shape or a["title_ids"].ndim != 1:
        raise _corrupt(path, "title_ids and title_names differ in shape")


def _fits_int64(a: np.ndarray) -> bool:
    return a.dtype.kind == "i" or int(a.max()) <= np.iinfo(np.int64).max


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
    if indices.ndim != 1:
        raise _corrupt(path, f"seen_indices must be 1-D, got shape {indices.shape}")
    if (
        indptr[0] != 0
        or indptr[-1] != indices.shape[0]
        or np.any(np.diff(indptr) < 0)
        or (indices.size and (indices.min() < 0 or indices.max() >= n_items))
    ):
        raise ModelFileError(f"{path}: corrupt model file (seen-items index out of range)")
    if not all(np.all(np.isfinite(a[k])) for k in ("P", "Q", "bu", "bi")):
        raise ModelFileError(f"{path}: corrupt model file (NaN or inf in the factors)")
