"""The companion book's chapter-3 networks, with the factor models' API (docs/derivation.md §14–16).

Every model here scores a pair as μ + bᵤ + bᵢ + f(u, i) (``biased=False``: f alone, the book's
form), where f is

- :class:`TwoTowerMF`: tower_u(Pᵤ)·tower_i(Qᵢ), each tower Linear+Tanh layers;
- :class:`ConcatMLP`: MLP([Pᵤ, Qᵢ]), NCF's concatenation with ReLU layers and a linear output;
- :class:`EmbeddingMLP`: MLP([Pᵤ, Qᵢ, the embeddings of u's and i's features]).

``task="rating"`` fits ratings with the squared error and clips predictions to the training
scale; ``task="binary"`` fits 0/1 labels (:func:`mfrec.data.binarize`) with
``BCEWithLogitsLoss`` and predicts probabilities σ(score). Both train on minibatches with
AdamW plus ½·reg on the looked-up embeddings and biases; ``eval_set``/``patience`` and
``val_fraction`` early-stop as :class:`mfrec.torch_impl.neural.NeuralMF` does. An unknown
user or item falls back to μ + the known biases, as in every factor model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from mfrec._internal import check_dtype, check_positive, check_ratings
from mfrec.data.ids import UNKNOWN
from mfrec.data.splits import carve_validation
from mfrec.modelstate import ctor_params
from mfrec.reference.early_stopping import EarlyStopping
from mfrec.reference.logistic import check_labels, logit, remember_label_scale, sigmoid
from mfrec.reference.mf import FactorModel, check_finite
from mfrec.reference.sampling import epoch_order, init_factors
from mfrec.torch_impl.model import TORCH_DTYPES, checked_device

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

TASKS = ("rating", "binary")

NO_FOLD_IN = (
    "folding in solves for a new user's factor row against fixed item rows, and this "
    "model's score is not a dot product of factor rows"
)
NO_SIMILAR = (
    "its item embeddings reach the score only through the network, so their cosine is not "
    "the model's similarity"
)


def layers(widths: tuple[int, ...], act: type[nn.Module], dtype, out: int | None) -> nn.Sequential:
    """Linear+``act`` through ``widths`` (widths[0] is the input), then Linear to ``out``."""
    mods: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        mods += [nn.Linear(a, b, dtype=dtype), act()]
    if out is not None:
        mods.append(nn.Linear(widths[-1], out, dtype=dtype))
    return nn.Sequential(*mods)


def as_features(name: str, features) -> dict[str, np.ndarray]:
    """One side's features as arrays: ``{"fields": (n, F)}`` of per-column codes >= 0, or
    ``{"indptr": (n + 1,), "indices": (nnz,)}`` of a multi-hot CSR (anything with ``indptr``
    and ``indices``, e.g. :class:`mfrec.data.features.Features` or a SciPy CSR matrix, or a
    pair); ``ValueError`` naming ``name`` when malformed."""
    if hasattr(features, "indptr"):
        features = (features.indptr, features.indices)
    if isinstance(features, tuple):
        indptr, indices = (np.asarray(a) for a in features)
        if indptr.ndim != 1 or indices.ndim != 1 or indptr.dtype.kind not in "iu":
            raise ValueError(f"{name}: a CSR pair needs 1-D integer indptr and indices")
        if indptr.size == 0 or indptr[0] != 0 or indptr[-1] != indices.size:
            raise ValueError(f"{name}: indptr must start at 0 and end at len(indices)")
        if np.any(np.diff(indptr) < 0) or (indices.size and indices.min() < 0):
            raise ValueError(f"{name}: indptr must not decrease and indices must be >= 0")
        out = {"indptr": indptr, "indices": indices}
    else:
        fields = np.asarray(features)
        if fields.ndim != 2 or fields.dtype.kind not in "iu" or fields.shape[1] == 0:
            raise ValueError(f"{name}: need a 2-D integer array (one column per field)")
        if fields.size and fields.min() < 0:
            raise ValueError(f"{name}: field codes must be >= 0, found {int(fields.min())}")
        out = {"fields": fields}
    return {k: np.ascontiguousarray(v, dtype=np.int64) for k, v in out.items()}


class FeatureEmbedding(nn.Module):
    """The embeddings of one side's features, concatenated: (B, width).

    Fields (one code per column): one ``dim``-wide embedding per column, side by side
    (codes of column c index rows offsetᶜ + code of one table). Multi-hot: the mean of the
    embeddings of the entity's features (``nn.EmbeddingBag(mode="mean")``; none: zeros).
    The feature arrays are buffers, so a model file holds them.
    """

    fields: torch.Tensor  # (n, F) buffers: fields (and offsets (F,)), or indptr and indices
    offsets: torch.Tensor
    indptr: torch.Tensor
    indices: torch.Tensor

    def __init__(self, features: dict[str, np.ndarray], dim: int, dtype) -> None:
        super().__init__()
        for key, a in features.items():
            self.register_buffer(key, torch.from_numpy(a))
        if "fields" in features:
            sizes = features["fields"].max(axis=0) + 1  # (F,)
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            self.register_buffer("offsets", torch.from_numpy(offsets.astype(np.int64)))
            self.table = nn.Embedding(int(sizes.sum()), dim, dtype=dtype)
            self.width = dim * features["fields"].shape[1]
        else:
            n_values = int(features["indices"].max()) + 1 if features["indices"].size else 1
            self.table = nn.EmbeddingBag(n_values, dim, mode="mean", dtype=dtype)
            self.width = dim
        nn.init.normal_(self.table.weight, 0.0, 0.1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "fields"):
            codes = self.fields[ids] + self.offsets  # (B, F)
            return self.table(codes).flatten(1)  # (B, F·dim)
        starts, stops = self.indptr[ids], self.indptr[ids + 1]  # (B,), (B,)
        counts = stops - starts  # (B,)
        bag_offsets = torch.cumsum(counts, 0) - counts  # (B,)
        total = int(counts.sum())
        shift = torch.repeat_interleave(starts - bag_offsets, counts, output_size=total)  # (nnz,)
        flat = self.indices[torch.arange(total, device=ids.device) + shift]  # (nnz,)
        return self.table(flat, bag_offsets)  # (B, dim)


class ScoredModule(nn.Module):
    """A torch module scoring pairs (u, i) over embeddings P, Q, biases bu, bi (n, 1) and the
    buffer μ: what :class:`TorchScored` reads back into numpy."""

    P: nn.Embedding
    Q: nn.Embedding
    bu: nn.Embedding
    bi: nn.Embedding
    mu: torch.Tensor

    def penalty(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """The per-sample L2 penalty of the looked-up rows, (B,)."""
        raise NotImplementedError


class NetworkModule(ScoredModule):
    """Embeddings P, Q, biases bu, bi and μ around an interaction f: μ + bᵤ + bᵢ + f(u, i)."""

    def __init__(self, P: np.ndarray, Q: np.ndarray, mu: float, biased: bool) -> None:
        super().__init__()
        dtype = TORCH_DTYPES[P.dtype.type]
        self.biased = biased
        self.P = nn.Embedding.from_pretrained(torch.from_numpy(P.copy()), freeze=False)
        self.Q = nn.Embedding.from_pretrained(torch.from_numpy(Q.copy()), freeze=False)
        self.bu = nn.Embedding.from_pretrained(
            torch.zeros(P.shape[0], 1, dtype=dtype), freeze=not biased
        )
        self.bi = nn.Embedding.from_pretrained(
            torch.zeros(Q.shape[0], 1, dtype=dtype), freeze=not biased
        )
        self.register_buffer("mu", torch.tensor(mu if biased else 0.0, dtype=dtype))

    def interaction(self, u, i, Pu: torch.Tensor, Qi: torch.Tensor) -> torch.Tensor:
        """f(u, i) from the looked-up rows Pᵤ, Qᵢ (B, k); shape (B,)."""
        raise NotImplementedError

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        score = self.interaction(u, i, self.P(u), self.Q(i))  # (B,)
        if self.biased:
            score = score + self.mu + self.bu(u).squeeze(-1) + self.bi(i).squeeze(-1)  # (B,)
        return score

    def penalty(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """‖Pᵤ‖² + ‖Qᵢ‖² (+ bᵤ² + bᵢ²) per sample, (B,)."""
        out = (self.P(u) ** 2).sum(-1) + (self.Q(i) ** 2).sum(-1)  # (B,)
        if self.biased:
            out = out + self.bu(u).squeeze(-1) ** 2 + self.bi(i).squeeze(-1) ** 2  # (B,)
        return out


class TwoTowerModule(NetworkModule):
    """f = tower_u(Pᵤ)·tower_i(Qᵢ), each tower Linear+Tanh through ``hidden``."""

    def __init__(self, P, Q, mu, biased, hidden: tuple[int, ...]) -> None:
        super().__init__(P, Q, mu, biased)
        widths = (P.shape[1], *hidden)
        self.user_tower = layers(widths, nn.Tanh, self.mu.dtype, None)
        self.item_tower = layers(widths, nn.Tanh, self.mu.dtype, None)

    def interaction(self, u, i, Pu, Qi):
        return (self.user_tower(Pu) * self.item_tower(Qi)).sum(-1)  # (B,)


class ConcatModule(NetworkModule):
    """f = MLP([Pᵤ, Qᵢ]): Linear+ReLU through ``hidden``, then Linear to one output."""

    def __init__(self, P, Q, mu, biased, hidden: tuple[int, ...]) -> None:
        super().__init__(P, Q, mu, biased)
        self.mlp = layers((2 * P.shape[1], *hidden), nn.ReLU, self.mu.dtype, 1)

    def interaction(self, u, i, Pu, Qi):
        return self.mlp(torch.cat([Pu, Qi], dim=-1)).squeeze(-1)  # (B,)


class EmbeddingMLPModule(NetworkModule):
    """f = MLP([Pᵤ, Qᵢ, E_user(u), E_item(i)]) over the id and feature embeddings."""

    def __init__(self, P, Q, mu, biased, hidden, user_features, item_features, dim) -> None:
        super().__init__(P, Q, mu, biased)
        self.user_features = FeatureEmbedding(user_features, dim, self.mu.dtype)
        self.item_features = FeatureEmbedding(item_features, dim, self.mu.dtype)
        width = 2 * P.shape[1] + self.user_features.width + self.item_features.width
        self.mlp = layers((width, *hidden), nn.ReLU, self.mu.dtype, 1)

    def interaction(self, u, i, Pu, Qi):
        x = torch.cat([Pu, Qi, self.user_features(u), self.item_features(i)], dim=-1)  # (B, w)
        return self.mlp(x).squeeze(-1)  # (B,)


def host_copy(w: torch.Tensor) -> np.ndarray:
    """A numpy copy of tensor ``w`` (detached, on the host)."""
    return w.detach().cpu().numpy().copy()


def module_factors(m) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Copies of a module's embeddings P, Q and of its (n, 1) biases bu, bi as vectors."""
    P, Q = host_copy(m.P.weight), host_copy(m.Q.weight)
    return P, Q, host_copy(m.bu.weight[:, 0]), host_copy(m.bi.weight[:, 0])


class TorchScored(FactorModel):
    """What a :class:`FactorModel` scored by a torch ``module`` over its embeddings P, Q and
    biases bu, bi shares: numpy copies of those, scores by the network, its model file."""

    module: ScoredModule
    device: torch.device

    def _sync_numpy(self) -> None:
        """P, Q, bu, bi as numpy copies of the module's weights."""
        self.P, self.Q, self.bu, self.bi = module_factors(self.module)

    def raw_predict(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """The network's unclipped score (a logit for the binary task; eval mode)."""
        u_t = torch.from_numpy(u).to(self.device)  # (n,)
        i_t = torch.from_numpy(i).to(self.device)  # (n,)
        with torch.no_grad():
            return self.module(u_t, i_t).cpu().numpy()

    def _score_rows(self, u: np.ndarray) -> np.ndarray:
        """(len(u), n_items) unclipped scores from the network (an ``UNKNOWN`` user: μ + bᵢ)."""
        S = super()._score_rows(np.full(u.shape[0], UNKNOWN))  # (c, n_items) fallback rows
        known = np.flatnonzero(u != UNKNOWN)
        if known.size:
            users = np.repeat(u[known], self.n_items)  # (c_known·n_items,)
            items = np.tile(np.arange(self.n_items, dtype=np.int64), known.size)
            S[known] = self.raw_predict(users, items).reshape(known.size, self.n_items)
        return S

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The constructor's arguments, the training scale, and the module's state dict."""
        return module_state(self)


class MinibatchNetwork(TorchScored):
    """What :class:`~mfrec.torch_impl.neural.NeuralMF` and the chapter-3 networks share: the
    minibatch fit with validation carving and early stopping, and the model file's restore.

    A subclass builds the network (:meth:`_build`), its optimizer (:meth:`_optimizer`) and a
    minibatch's loss (:meth:`_batch_loss`); its score is not a dot product of the factors, so
    fold-in and similar items are refused (see ``refuses``).
    """

    factor_form = False
    refuses = {"fold-in": NO_FOLD_IN, "similar": NO_SIMILAR}
    n_factors: int
    n_epochs: int
    lr: float
    batch_size: int
    val_fraction: float
    patience: int
    init_std: float
    seed: int
    dtype: type

    def _minibatch_options(
        self,
        n_epochs: int,
        lr: float,
        reg: float,
        batch_size: int,
        val_fraction: float,
        patience: int,
        device: str,
    ) -> None:
        """Check and keep the options of the minibatch fit that every subclass takes."""
        self.n_epochs = check_positive("n_epochs", n_epochs, integer=True, allow_zero=True)
        self.lr = check_positive("lr", lr)
        self.reg = check_positive("reg", reg, allow_zero=True)
        self.batch_size = check_positive("batch_size", batch_size, integer=True)
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.val_fraction = float(val_fraction)
        self.patience = check_positive("patience", patience, integer=True)
        self.device = checked_device(device)

    def _fit_indices(
        self, u, i, r, n_users: int, n_items: int, callback=None, eval_set=None, patience=None
    ) -> Self:
        """Minibatches of ``batch_size`` in a seeded order, ``n_epochs`` times, each a step of
        the class's optimizer on its mean loss; ``callback(epoch, self)`` after each epoch;
        ``eval_set``/``patience`` as in SGD MF.

        ``history_`` holds each epoch's mean loss before the penalty (training MSE, or log loss
        for the binary task). Without ``eval_set``, ``val_fraction`` > 0 carves that share of
        the ratings out as the validation set (:func:`mfrec.data.splits.carve_validation`: its
        users and items absent from the rest are scored by the fallback, ``n_val_unknown_`` of
        them), trains on the rest and early-stops with ``self.patience``.
        """
        u_np, i_np, r_np = check_ratings(u, i, r, self.dtype)
        rng = np.random.default_rng(self.seed)
        self._remember_scale(r_np)
        seen = (u_np, i_np)  # validation ratings carved out below still count as seen
        if eval_set is None and self.val_fraction:
            carved = carve_validation(u_np, i_np, r_np, self.val_fraction, rng)
            eval_set, keep, self.n_val_unknown_ = carved.val, carved.fit_rows, carved.n_unknown
            u_np, i_np, r_np = u_np[keep], i_np[keep], r_np[keep]
            patience = self.patience if patience is None else patience
        torch.manual_seed(self.seed)
        P0, Q0 = init_factors(rng, n_users, n_items, self.n_factors, self.init_std, self.dtype)
        self.mu = self._initial_mu(r_np)
        self.module = self._build(P0, Q0, self.mu).to(self.device)
        self._sync_numpy()
        self._remember_seen(*seen)
        stopper = None if eval_set is None else EarlyStopping(eval_set, patience)
        u, i, r = (torch.from_numpy(a).to(self.device) for a in (u_np, i_np, r_np))
        optimizer = self._optimizer()
        self.history_: list[float] = []
        for epoch in range(self.n_epochs):
            order = torch.from_numpy(epoch_order(rng, r_np.shape[0], True)).to(self.device)
            self.module.train()
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            for start in range(0, order.shape[0], self.batch_size):
                idx = order[start : start + self.batch_size]  # (B,)
                loss, batch_total = self._batch_loss(u[idx], i[idx], r[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += batch_total
            self.module.eval()
            mean_loss = float(total) / r_np.shape[0]
            check_finite(mean_loss, epoch, self.lr)
            self.history_.append(mean_loss)
            self._sync_numpy()
            if callback is not None:
                callback(epoch, self)
            if stopper is not None and stopper.update(epoch, self):
                break
        if stopper is not None:
            self.val_history_, self.best_epoch_ = stopper.history, stopper.best_epoch
            if patience is not None:
                stopper.restore(self)
        return self

    def _initial_mu(self, r: np.ndarray) -> float:
        """The module's μ for the fit ratings ``r`` (their mean)."""
        return float(r.mean())

    def _build(self, P: np.ndarray, Q: np.ndarray, mu: float) -> ScoredModule:
        """The network around initial embeddings P, Q and mean score μ."""
        raise NotImplementedError

    def _optimizer(self) -> torch.optim.Optimizer:
        """The optimizer over the module's parameters."""
        raise NotImplementedError

    def _batch_loss(
        self, u: torch.Tensor, i: torch.Tensor, r: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss a step minimises, the float64 sum of the minibatch's loss before the
        penalty, which ``history_`` averages) for the minibatch (u, i, r)."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, base: FactorModel, params: dict, arrays: dict) -> Self:
        """The fitted model a model file holds (``base``: its validated factor part)."""
        model = cls(**params["ctor"], **cls._features_from(arrays))
        model.module = model._build(base.P, base.Q, base.mu)
        return restore_module(model, base, params, arrays)

    @classmethod
    def _features_from(cls, arrays: dict) -> dict:
        return {}


class NetworkMF(MinibatchNetwork):
    """What the chapter-3 networks share: AdamW, the two tasks (module doc)."""

    supports_binary = True

    def __init__(
        self,
        *,
        n_factors: int = 32,
        hidden: tuple[int, ...] = (64, 32),
        n_epochs: int = 20,
        lr: float = 1e-3,
        reg: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int = 512,
        task: str = "rating",
        biased: bool = True,
        val_fraction: float = 0.0,
        patience: int = 2,
        init_std: float = 0.1,
        seed: int = 0,
        dtype: str = "float32",
        device: str = "cpu",
    ) -> None:
        self.n_factors = check_positive("n_factors", n_factors, integer=True)
        self.hidden = tuple(check_positive("hidden", h, integer=True) for h in hidden)
        self.weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.biased = bool(biased)
        self.init_std = check_positive("init_std", init_std, allow_zero=True)
        self.seed = check_positive("seed", seed, integer=True, allow_zero=True)
        self.dtype = check_dtype(dtype)
        self._minibatch_options(n_epochs, lr, reg, batch_size, val_fraction, patience, device)

    def describe(self) -> str:
        what = "ratings (MSE)" if self.task == "rating" else "liked-or-not (BCE)"
        return (
            f"{type(self).__name__} on {what}: k={self.n_factors}, hidden {list(self.hidden)}, "
            f"AdamW lr {self.lr}, reg {self.reg}, batch {self.batch_size}; torch on {self.device}"
        )

    def _initial_mu(self, r: np.ndarray) -> float:
        """The mean rating, or the logit of the labels' mean for the binary task (checking
        they are 0/1); 0 when not ``biased``."""
        mu = logit(check_labels(r)) if self.task == "binary" else float(r.mean())
        return mu if self.biased else 0.0

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.module.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )

    def _batch_loss(self, u, i, r):
        """Squared error, or BCE-with-logits for ``task="binary"`` (whose ``ratings`` are 0/1
        labels), + ½·reg·penalty per sample, averaged."""
        score = self.module(u, i)  # (B,)
        if self.task == "binary":
            fit_loss = nn.functional.binary_cross_entropy_with_logits(
                score, r, reduction="none"
            )  # (B,)
        else:
            fit_loss = (r - score) ** 2  # (B,)
        loss = (fit_loss + 0.5 * self.reg * self.module.penalty(u, i)).mean()
        return loss, fit_loss.detach().double().sum()

    def _remember_scale(self, ratings: np.ndarray) -> None:
        if self.task == "binary":
            remember_label_scale(self, ratings)
        else:
            super()._remember_scale(ratings)

    def clip(self, r_hat: np.ndarray) -> np.ndarray:
        """The output scale: ratings clipped to the training scale, or P(liked) = σ(z) for the
        binary task (so ``predict`` and ``recommend``'s scores are probabilities)."""
        return sigmoid(r_hat) if self.task == "binary" else super().clip(r_hat)


def module_state(model) -> tuple[dict, dict[str, np.ndarray]]:
    """A torch model's state record: constructor arguments, scale, ``state_dict`` arrays."""
    scale = {k: getattr(model, k, None) for k in ("r_min", "r_max", "r_mean_")}
    sd = {k: v.detach().cpu().numpy() for k, v in model.module.state_dict().items()}
    return {"ctor": ctor_params(model), "scale": scale}, sd


def restore_module(model, base: FactorModel, params: dict, arrays: dict):
    """Load a state record's ``state_dict`` into ``model.module`` (shapes must match) and the
    seen items and scale from the file; the factor arrays come from the module."""
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    model.module.load_state_dict(state, strict=True)
    model.module.to(model.device).eval()
    model.mu, model.params = float(base.mu), base.params
    model._seen_indptr, model._seen_indices = base._seen_indptr, base._seen_indices
    for k, v in params["scale"].items():
        setattr(model, k, None if v is None else float(v))
    model._sync_numpy()
    return model


class TwoTowerMF(NetworkMF):
    """Two towers: μ + bᵤ + bᵢ + tower_u(Pᵤ)·tower_i(Qᵢ), each tower Linear+Tanh through
    ``hidden`` (``hidden=()``: the plain dot product, i.e. MF trained by AdamW)."""

    def _build(self, P, Q, mu):
        return TwoTowerModule(P, Q, mu, self.biased, self.hidden)


class ConcatMLP(NetworkMF):
    """NCF's concatenation: μ + bᵤ + bᵢ + MLP([Pᵤ, Qᵢ]) (ReLU layers, linear output)."""

    def _build(self, P, Q, mu):
        return ConcatModule(P, Q, mu, self.biased, self.hidden)


class EmbeddingMLP(NetworkMF):
    """Embedding-MLP: μ + bᵤ + bᵢ + MLP([Pᵤ, Qᵢ, E_user(u), E_item(i)]) over the id and
    feature embeddings (:class:`FeatureEmbedding`, ``feature_dim`` wide each).

    ``user_features`` (n_users rows) and ``item_features`` (n_items rows) are each a 2-D
    integer array of per-column codes or a multi-hot CSR (see :func:`as_features`); their
    rows are the model's user and item indices, so they must cover ``n_users``/``n_items``.
    """

    def __init__(self, *, user_features, item_features, feature_dim: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.user_features = as_features("user_features", user_features)
        self.item_features = as_features("item_features", item_features)
        self.feature_dim = check_positive("feature_dim", feature_dim, integer=True)

    def _build(self, P, Q, mu):
        for name, n in (("user_features", P.shape[0]), ("item_features", Q.shape[0])):
            f = getattr(self, name)
            rows = f["fields"].shape[0] if "fields" in f else f["indptr"].shape[0] - 1
            if rows != n:
                raise ValueError(f"{name} has {rows} rows but the data has {n}")
        return EmbeddingMLPModule(
            P, Q, mu, self.biased, self.hidden, self.user_features, self.item_features,
            self.feature_dim,
        )  # fmt: skip

    @classmethod
    def _features_from(cls, arrays: dict) -> dict:
        out = {}
        for side in ("user_features", "item_features"):
            keys = [k for k in ("fields", "indptr", "indices") if f"{side}.{k}" in arrays]
            values = [arrays[f"{side}.{k}"] for k in keys]
            out[side] = values[0] if keys == ["fields"] else tuple(values)
        return out
