"""Bayesian factorization machine by Gibbs sampling with relation blocks (Rendle 2013).

Model (an order-2 FM over the concatenated binary/real features xₙ of rating n)::

    ŷₙ = w₀ + Σⱼ wⱼ xₙⱼ + ½ Σ_f [(Σⱼ v_jf xₙⱼ)² − Σⱼ v_jf² xₙⱼ²],   yₙ = ŷₙ + ε, ε ~ N(0, 1/α)

Here xₙ = [U_{u(n)}, I_{i(n)}]: the row of the user block U (the user's one-hot id, side
features, and the implicit set N(u) weighted |N(u)|^−½ as SVD++ does) beside the row of the item
block I (one-hot id, side features, optionally the raters R(i) weighted |R(i)|^−½), and
optionally a block whose rows are the ratings themselves (the rating's date). A user or item
with no training ratings has no id entry (:func:`rated_ids`): a cold item with features is
predicted from its features, an ids-only model falls back to μ + bᵤ for it. Priors as
libFM's MCMC: wⱼ ~ N(μ_g, 1/λ_g) and v_jf ~ N(μ_gf, 1/λ_gf) per feature group g, with
Normal-Gamma hyperpriors (μ₀ = 0, γ₀ = 1, α_λ = β_λ = 1), α ~ Gamma(½(α₀ + n), ½(β₀ + Σe²)),
w₀ flat.

One sweep draws α, the hyper-parameters, w₀, every wⱼ and then, factor f by factor f, every
v_jf from its exact Gaussian conditional. ŷ is linear in any single coordinate θ, ŷₙ = gₙ + θhₙ,
so with residuals eₙ = yₙ − ŷₙ::

    prec = α Σₙ hₙ² + λ,   mean = (α Σₙ (eₙ + θhₙ) hₙ + λμ) / prec,   θ' = mean + z/√prec

Relation blocks (Rendle 2013, and myFM): for v_jf of the user block, hₙ = x_uj(a_u + rₙ) with
a_u = q_uf − v_jf x_uj (q_uf = Σⱼ x_uj v_jf, the block's cached sum) and rₙ the other blocks'
q of n, the same for every coordinate of the block; so Σₙ hₙ² and Σₙ eₙhₙ over u's ratings come
from per-user sums cnt_u, R1_u = Σrₙ, R2_u = Σrₙ², E_u = Σeₙ, ER_u = Σeₙrₙ, updated in O(1) per
(u, j) entry when θ moves by δ (eₙ −= δhₙ). The per-rating eₙ are brought up to date once per
block and factor. A sweep costs O(k·(ratings + feature entries)), never ratings × features.

The prediction is the posterior mean over the kept samples, and for two blocks it is a factor
model: ŷ = w₀ + (lin_u + pair_u) + (lin_i + pair_i) + q_u·q_i with lin = Σⱼ wⱼxⱼ and pair =
½Σ_f(q_f² − Σⱼ v_jf² xⱼ²) within the block, so the average is :class:`BayesianMF`'s (samples'
q side by side, scaled by 1/√S; μ the training mean, w₀ − μ folded into bᵤ) and predict,
recommend and saving work unchanged. A rating block adds a per-pair part (see
:meth:`BayesianFM.raw_predict`), and saving is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mfrec._internal import check_ratings, njit, njit_inline
from mfrec.data.features import Features, sets_by_row
from mfrec.data.ids import UNKNOWN
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.mf import extends
from mfrec.reference.svdpp import _check_rows

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

Block = tuple
"""A relation block for the kernels: (R_ptr, R_idx, C_ptr, C_row, C_val, row_of, off).

R_ptr/R_idx: each block row's ratings (CSR); C_ptr/C_row/C_val: each block feature's rows and
values (CSC); row_of: the block row of each rating (its user or item); off: the block's first
global feature index."""

MU0, GAMMA0, ALPHA_LAMBDA, BETA_LAMBDA = 0.0, 1.0, 1.0, 1.0
"""libFM's MCMC hyperpriors: μ_g ~ N(μ₀, 1/(γ₀λ_g)), λ_g ~ Gamma(½(α_λ + 1), ½β_λ)."""


@njit
def _block_state(ptr, idx, val, w, V, q, s, lin):
    """From scratch, per block row b: lin_b = Σⱼ wⱼx_bj, q_bf = Σⱼ v_jf x_bj, s_bf = Σⱼ v_jf² x_bj²
    (``idx`` global feature indices of the block's CSR rows)."""
    k = V.shape[1]
    for b in range(ptr.shape[0] - 1):
        lin[b] = 0.0
        for f in range(k):
            q[b, f] = 0.0
            s[b, f] = 0.0
        for a in range(ptr[b], ptr[b + 1]):
            j, x = idx[a], val[a]
            lin[b] += w[j] * x
            for f in range(k):
                q[b, f] += V[j, f] * x
                s[b, f] += V[j, f] * V[j, f] * x * x
    return lin


@njit
def _residuals(y, w0, blocks, states, e):
    """eₙ = yₙ − ŷₙ from the blocks' cached state: ŷₙ = w₀ + Σ_b lin_b + ½Σ_f[(Σ_b q_bf)² −
    Σ_b s_bf], each block at its row of rating n."""
    k = states[0][0].shape[1]
    for n in range(y.shape[0]):
        r_hat = w0
        for f in range(k):
            qf = 0.0
            for b in range(len(blocks)):
                row, q, s = blocks[b][5][n], states[b][0], states[b][1]
                qf += q[row, f]
                r_hat -= 0.5 * s[row, f]
            r_hat += 0.5 * qf * qf
        for b in range(len(blocks)):
            r_hat += states[b][2][blocks[b][5][n]]
        e[n] = y[n] - r_hat
    return e


@njit
def _draw(theta, sum_hh, sum_eh, lam, mu, alpha, z):
    """θ' from its Gaussian conditional: prec = αΣh² + λ, mean = (α(Σeh + θΣh²) + λμ)/prec."""
    prec = alpha * sum_hh + lam
    return (alpha * (sum_eh + theta * sum_hh) + lam * mu) / prec + z / np.sqrt(prec)


@njit
def _w_caches(e, R_ptr, R_idx, cnt, E):
    """Per block row b: cnt_b = its number of ratings, E_b = Σ eₙ over them."""
    for b in range(R_ptr.shape[0] - 1):
        cnt[b] = R_ptr[b + 1] - R_ptr[b]
        E[b] = 0.0
        for a in range(R_ptr[b], R_ptr[b + 1]):
            E[b] += e[R_idx[a]]


@njit_inline
def _draw_w_coord(j, block, cnt, E, w, lin, grp, mu_w, lam_w, alpha, z):
    """Draw w_{off+j} of a block (hₙ = x_bj): Σh² = Σ_b x²cnt_b, Σeh = Σ_b x E_b; then
    E_b −= δx cnt_b and lin_b += δx for the rows b holding feature j."""
    _, _, C_ptr, C_row, C_val, _, off = block
    g = off + j
    sum_hh = 0.0
    sum_eh = 0.0
    for a in range(C_ptr[j], C_ptr[j + 1]):
        b, x = C_row[a], C_val[a]
        sum_hh += x * x * cnt[b]
        sum_eh += x * E[b]
    new = _draw(w[g], sum_hh, sum_eh, lam_w[grp[g]], mu_w[grp[g]], alpha, z)
    delta = new - w[g]
    w[g] = new
    for a in range(C_ptr[j], C_ptr[j + 1]):
        b, x = C_row[a], C_val[a]
        E[b] -= delta * x * cnt[b]
        lin[b] += delta * x


CACHE_COLUMNS = 8
"""Columns of a block's per-row cache for one factor f (one 64-byte row, so that a draw's
scattered rows cost a cache line each): q_bf, s_bf, cnt_b, R1_b, R2_b, E_b, ER_b, unused."""
QF, SF, CNT, R1, R2, EB, ERB = range(7)


@njit
def _cache_rows(f, block, q, s, C):
    """Start block rows' cache ``C`` for factor f: q_bf, s_bf, cnt_b, and zero rating sums."""
    R_ptr = block[0]
    for b in range(R_ptr.shape[0] - 1):
        C[b, QF] = q[b, f]
        C[b, SF] = s[b, f]
        C[b, CNT] = R_ptr[b + 1] - R_ptr[b]
        C[b, R1] = 0.0
        C[b, R2] = 0.0
        C[b, EB] = 0.0
        C[b, ERB] = 0.0


@njit_inline
def _add_rating(C, b, r, e_n):
    """Add a rating of row b with rₙ = r and residual eₙ to the cache's sums."""
    C[b, R1] += r
    C[b, R2] += r * r
    C[b, EB] += e_n
    C[b, ERB] += e_n * r


@njit_inline
def _q_sum(n, f, blocks, states):
    """Σ_b q_bf over the blocks' rows of rating n."""
    qf = 0.0
    for b in range(len(blocks)):
        qf += states[b][0][blocks[b][5][n], f]
    return qf


@njit
def _v_caches(f, e, qn, blocks, states, C):
    """qnₙ = Σ_b q_bf of every rating n, and the first block's cache ``C`` for factor f: q_bf,
    s_bf and, with rₙ = qnₙ − q_bf (the other blocks' sum), cnt_b, R1_b = Σrₙ, R2_b = Σrₙ²,
    E_b = Σeₙ, ER_b = Σeₙrₙ over b's ratings (summed in rating order, one pass)."""
    block, (q, s, _) = blocks[0], states[0]
    _cache_rows(f, block, q, s, C)
    row_of = block[5]
    for n in range(e.shape[0]):
        qn[n] = _q_sum(n, f, blocks, states)
        b = row_of[n]
        _add_rating(C, b, qn[n] - C[b, QF], e[n])


@njit_inline
def _draw_v_coord(j, f, block, C, V, grp, mu_v, lam_v, alpha, z):
    """Draw v_{off+j, f} of a block: with a_b = q_bf − θx_bj, hₙ = x(a_b + rₙ), so
    Σh² = Σ_b x²(cnt a² + 2aR1 + R2), Σeh = Σ_b x(aE + ER); then, as eₙ −= δhₙ,
    E_b −= δx(cnt a + R1), ER_b −= δx(aR1 + R2), q_bf += δx, s_bf += (θ'² − θ²)x² in ``C``."""
    _, _, C_ptr, C_row, C_val, _, off = block
    g = off + j
    theta = V[g, f]
    sum_hh = 0.0
    sum_eh = 0.0
    for c in range(C_ptr[j], C_ptr[j + 1]):
        b, x = C_row[c], C_val[c]
        a = C[b, QF] - theta * x
        sum_hh += x * x * (C[b, CNT] * a * a + 2.0 * a * C[b, R1] + C[b, R2])
        sum_eh += x * (a * C[b, EB] + C[b, ERB])
    new = _draw(theta, sum_hh, sum_eh, lam_v[grp[g], f], mu_v[grp[g], f], alpha, z)
    delta = new - theta
    V[g, f] = new
    for c in range(C_ptr[j], C_ptr[j + 1]):
        b, x = C_row[c], C_val[c]
        a = C[b, QF] - theta * x
        C[b, EB] -= delta * x * (C[b, CNT] * a + C[b, R1])
        C[b, ERB] -= delta * x * (a * C[b, R1] + C[b, R2])
        C[b, QF] += delta * x
        C[b, SF] += (new * new - theta * theta) * x * x


@njit
def _propagate_v(f, b, e, qn, blocks, states, caches):
    """Bring eₙ and qnₙ up to date after block b's factor f moved from (q, s) to its cache's
    (q', s'): Δŷₙ = (q' − q)(½(q' + q) + rₙ) − ½(s' − s) with rₙ = qnₙ − q; then q, s = q', s'.
    In the same pass, the next block's cache (as :func:`_v_caches`): block b + 1's for f or,
    after the last block, qn and the first block's for f + 1 (none after the last factor)."""
    last = b + 1 == len(blocks)
    nb, nf = (0, f + 1) if last else (b + 1, f)
    more = nf < states[0][0].shape[1]
    row_of, (q, s, _), C = blocks[b][5], states[b], caches[b]
    next_row, next_C = blocks[nb][5], caches[nb]
    if more:
        _cache_rows(nf, blocks[nb], states[nb][0], states[nb][1], next_C)
    for n in range(e.shape[0]):
        c = row_of[n]
        r = qn[n] - q[c, f]
        dq = C[c, QF] - q[c, f]
        e[n] -= dq * (0.5 * (C[c, QF] + q[c, f]) + r) - 0.5 * (C[c, SF] - s[c, f])
        qn[n] += dq
        if more:
            if last:
                qn[n] = _q_sum(n, nf, blocks, states)
            c = next_row[n]
            _add_rating(next_C, c, qn[n] - next_C[c, QF], e[n])
    for c in range(C.shape[0]):
        q[c, f] = C[c, QF]
        s[c, f] = C[c, SF]


@njit
def _sweep(y, e, w, V, grp, mu_w, lam_w, mu_v, lam_v, alpha, z, blocks, states, caches, w0):
    """One Gibbs sweep in place (w₀, then every w, then V factor by factor; in each, block by
    block and feature by feature in global order, consuming ``z`` in that order); returns w₀.

    ``states[b]`` is block b's (q, s, lin), ``caches[b]`` its (rows, :data:`CACHE_COLUMNS`)
    work array; ``e`` the residuals, exact on entry and on exit."""
    n = y.shape[0]
    k = V.shape[1]
    sum_e = 0.0
    for m in range(n):
        sum_e += e[m]
    new = _draw(w0, float(n), sum_e, 0.0, 0.0, alpha, z[0])
    for m in range(n):
        e[m] -= new - w0
    w0 = new
    t = 1
    for b in range(len(blocks)):
        block, lin = blocks[b], states[b][2]
        rows = lin.shape[0]
        cnt = np.empty(rows)
        E = np.empty(rows)
        lin_old = lin.copy()
        _w_caches(e, block[0], block[1], cnt, E)
        for j in range(block[2].shape[0] - 1):
            _draw_w_coord(j, block, cnt, E, w, lin, grp, mu_w, lam_w, alpha, z[t])
            t += 1
        row_of = block[5]
        for m in range(n):
            e[m] -= lin[row_of[m]] - lin_old[row_of[m]]
    qn = np.empty(n)
    if k:
        _v_caches(0, e, qn, blocks, states, caches[0])
    for f in range(k):
        for b in range(len(blocks)):
            block, C = blocks[b], caches[b]
            for j in range(block[2].shape[0] - 1):
                _draw_v_coord(j, f, block, C, V, grp, mu_v, lam_v, alpha, z[t])
                t += 1
            _propagate_v(f, b, e, qn, blocks, states, caches)
    return w0


# --- building the blocks ------------------------------------------------------------------


def block_from_rows(
    ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, n_features: int, row_of: np.ndarray,
    off: int,
) -> Block:  # fmt: skip
    """The kernels' :data:`Block` of CSR rows (``idx`` block-local) for ratings' ``row_of``."""
    n_rows = ptr.shape[0] - 1
    R_ptr, R_idx = _group(row_of, n_rows)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(ptr))
    order = np.argsort(idx, kind="stable")
    C_ptr = np.concatenate([[0], np.cumsum(np.bincount(idx, minlength=n_features))])
    return (
        R_ptr, R_idx, C_ptr.astype(np.int64), rows[order], val[order].astype(np.float64),
        row_of.astype(np.int64), int(off),
    )  # fmt: skip


def _group(row_of: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the rating indices of each row (ascending within a row)."""
    order = np.argsort(row_of, kind="stable").astype(np.int64)
    ptr = np.concatenate([[0], np.cumsum(np.bincount(row_of, minlength=n_rows))])
    return ptr.astype(np.int64), order


def entity_block(
    n_rows: int, parts: list[tuple[str, np.ndarray, np.ndarray, int, bool]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[int]]:
    """One block's CSR rows (indptr, block-local indices, values) from named parts
    (group name, indptr, indices, width, normalise): part p's indices shifted past the earlier
    parts' widths, its values 1 or, where ``normalise``, |row's part-p set|^−½ (SVD++'s weight);
    also the group names and each group's width."""
    counts = np.zeros(n_rows, dtype=np.int64)
    rows, idx, val = [], [], []
    shift = 0
    for _, indptr, indices, width, normalise in parts:
        c = np.diff(indptr)
        counts += c
        rows.append(np.repeat(np.arange(n_rows), c))
        idx.append(np.asarray(indices, dtype=np.int64) + shift)
        weight = 1.0 / np.sqrt(np.maximum(c, 1)) if normalise else np.ones(n_rows)
        val.append(np.repeat(weight, c))
        shift += width
    order = np.argsort(np.concatenate(rows), kind="stable")
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return (
        ptr, np.concatenate(idx)[order], np.concatenate(val)[order],
        [p[0] for p in parts], [p[3] for p in parts],
    )  # fmt: skip


def _group_sums(grp: np.ndarray, X: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, X's columns): each group's column sums, added in row order (as np.add.at,
    a few times faster)."""
    columns = [np.bincount(grp, weights=x, minlength=n_groups) for x in X.T]
    return np.stack(columns, axis=1)


def draw_hyper(
    rng: np.random.Generator,
    w: np.ndarray,
    V: np.ndarray,
    grp: np.ndarray,
    lam_w: np.ndarray,
    lam_v: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(μ_w, λ_w, μ_v, λ_v) per group g (and factor) from their conditionals, in libFM's order:
    μ ~ N((Σθ + γ₀μ₀)/(n_g + γ₀), 1/((n_g + γ₀)λ)) with the current λ, then
    λ ~ Gamma(½(α_λ + n_g + 1), ½(β_λ + Σ(θ − μ)² + γ₀(μ − μ₀)²)) with the new μ."""
    n_groups = lam_w.shape[0]
    n_g = np.bincount(grp, minlength=n_groups).astype(np.float64)  # (G,)
    X = np.column_stack([w, V])  # (D, 1 + k): the w column, then V's
    lam = np.column_stack([lam_w, lam_v])  # (G, 1 + k)
    sums = _group_sums(grp, X, n_groups)
    prec = (n_g + GAMMA0)[:, None] * lam
    mu = (sums + GAMMA0 * MU0) / (n_g + GAMMA0)[:, None] + rng.standard_normal(lam.shape) / np.sqrt(
        prec
    )
    sq = _group_sums(grp, (X - mu[grp]) ** 2, n_groups)
    shape = (ALPHA_LAMBDA + n_g + 1.0) / 2.0
    rate = (BETA_LAMBDA + sq + GAMMA0 * (mu - MU0) ** 2) / 2.0
    lam = rng.gamma(np.broadcast_to(shape[:, None], lam.shape), 1.0 / rate)
    return mu[:, 0].copy(), lam[:, 0].copy(), mu[:, 1:].copy(), lam[:, 1:].copy()


def draw_alpha(rng: np.random.Generator, e: np.ndarray, a0: float, b0: float) -> float:
    """α ~ Gamma(½(α₀ + n), ½(β₀ + Σe²)) (libFM's noise precision)."""
    return float(rng.gamma((a0 + e.shape[0]) / 2.0, 2.0 / (b0 + float(e @ e))))


class BayesianFM(BayesianMF):
    """Gibbs-sampled factorization machine over user and item relation blocks; see the module
    doc. ``n_samples`` kept sweeps after ``burn_in`` discarded ones, every ``thin``-th kept;
    ``a0``, ``b0`` are α's Gamma prior (libFM's α₀ = β₀ = 1); ``alpha`` fixes α instead.

    ``fit``'s blocks: the user's id, ``user_features``, and (``implicit``) the items the user
    rated in these training ratings weighted |N(u)|^−½; the item's id, ``item_features``, and
    (``item_implicit``) its raters weighted |R(i)|^−½. Each part is its own prior group.
    ``rating_features`` (one row per training rating, e.g. :func:`~mfrec.data.rating_dates`)
    adds a third block whose rows are the ratings; the average is then no longer a factor
    model: :meth:`predict` needs the query rows' ``rating_features``, :meth:`score_all` and
    :meth:`recommend` score as of the training rows' highest feature index (for dates, the
    latest period), and the model cannot be saved.
    """

    @extends(BayesianMF, fixed=("ard",), n_samples=200)
    def __init__(self, **params) -> None:
        super().__init__(**params)

    def describe(self) -> str:
        groups = getattr(self, "groups_", None)
        return f"BayesianFM ({' + '.join(groups)})" if groups else "BayesianFM"

    def _fit_indices(
        self,
        u,
        i,
        r,
        n_users: int,
        n_items: int,
        callback=None,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        implicit: bool = True,
        item_implicit: bool = False,
        rating_features: Features | None = None,
    ) -> Self:
        """Run burn_in + n_samples sweeps over the blocks (see the class doc);
        ``callback(sweep, self)`` after each sees the running average (returning True ends
        the chain there, once a sample is kept). ``history_``: each
        sweep's training MSE; ``alpha_``: the last α; ``w0_``, ``w_``, ``V_``: the current
        (after fit, the last) sample."""
        u, i, r = check_ratings(u, i, r, np.float64)
        blocks, grp, self.groups_ = fm_blocks(
            u, i, n_users, n_items, user_features, item_features, implicit, item_implicit,
            rating_features,
        )  # fmt: skip
        self.factor_form = rating_features is None
        rng = np.random.default_rng(self.seed)
        k, D = self.n_factors, grp.shape[0]
        V = rng.normal(0.0, self.init_std, (D, k)) if self.init_std else np.zeros((D, k))
        w, w0 = np.zeros(D), 0.0
        states = []
        for ptr, idx, val, n_rows, _ in blocks:
            q, s, lin = np.empty((n_rows, k)), np.empty((n_rows, k)), np.empty(n_rows)
            _block_state(ptr, idx, val, w, V, q, s, lin)
            states.append((q, s, lin))
        kernel_blocks = tuple(b[4] for b in blocks)
        states_t = tuple(states)
        caches = tuple(np.empty((lin.shape[0], CACHE_COLUMNS)) for _, _, lin in states)
        (q_u, s_u, lin_u), (q_i, s_i, lin_i) = states[:2]
        e = _residuals(r, w0, kernel_blocks, states_t, np.empty(r.shape[0]))
        mu = self._start_samples(u, i, r, n_users, n_items)
        n_groups = len(self.groups_)
        mu_w, lam_w = np.zeros(n_groups), np.ones(n_groups)
        mu_v, lam_v = np.zeros((n_groups, k)), np.ones((n_groups, k))
        n_keep = -(-self.n_samples // self.thin)
        off = int(blocks[-1][4][6])  # the rating block's first feature (when there is one)
        D_r = D - off if rating_features is not None else 0
        self._rating_samples = [np.zeros(D_r), np.empty((D_r, k * n_keep))]
        alpha = 1.0 if self.alpha is None else self.alpha
        for sweep in range(self.burn_in + self.n_samples):
            if self.alpha is None:
                alpha = draw_alpha(rng, e, self.a0, self.b0)
            mu_w, lam_w, mu_v, lam_v = draw_hyper(rng, w, V, grp, lam_w, lam_v)
            z = rng.standard_normal(1 + D + D * k)
            w0 = _sweep(
                r, e, w, V, grp, mu_w, lam_w, mu_v, lam_v, alpha, z, kernel_blocks, states_t,
                caches, w0,
            )  # fmt: skip
            self.history_.append(float(e @ e) / r.shape[0])
            self.w0_, self.w_, self.V_ = w0, w, V  # the current sample (w, V updated in place)
            bu = w0 - mu + lin_u + 0.5 * (q_u**2 - s_u).sum(1)  # (n_users,)
            bi = lin_i + 0.5 * (q_i**2 - s_i).sum(1)  # (n_items,)
            self._current = (q_u, q_i, bu, bi)  # the user-item part of this sample
            cols = self._keep(sweep, q_u, q_i, bu, bi)
            if cols is not None:
                self._rating_samples[0] += w[D - D_r :]
                self._rating_samples[1][:, cols] = V[D - D_r :]
            if callback is not None and callback(sweep, self) and self._kept:
                break  # the callback ends the chain (once a sample is kept)
        self._finish(alpha)
        if rating_features is not None:
            self.w_rating_ = self._rating_samples[0] / self._kept  # (D_r,) the mean w
            self.V_rating_ = self._rating_samples[1][:, : k * self._kept] / np.sqrt(self._kept)
            self.n_rating_features_ = rating_features.n_features
            self._latest = np.unique(rating_features.indices)[-1:]  # (0 or 1,)
        del self._rating_samples
        return self

    def predict(self, users, items, rating_features: Features | None = None) -> np.ndarray:
        """FactorModel's predict, plus (a model fit with ``rating_features``) the rating
        block's part, from the rows of ``rating_features`` (one per queried pair)."""
        if not self.factor_form:
            if rating_features is None:
                raise ValueError(
                    "this BayesianFM was fit with rating_features: pass rating_features= "
                    "(one row per queried pair, the same vocabulary) to predict"
                )
            self._query = rating_features
        try:
            return super().predict(users, items)
        finally:
            self._query = None

    def raw_predict(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """μ + bᵤ + bᵢ + Pᵤ·Qᵢ, plus with a rating block the mean over samples of its part:
        Xw̄ + ½Σ[(XV)² − X²V²] + (XV)·(Pᵤ + Qᵢ), V the samples side by side over √S."""
        out = super().raw_predict(u, i)
        if self.factor_form:
            return out
        rows = getattr(self, "_query", None)
        if rows is None:
            raise ValueError("this BayesianFM was fit with rating_features: use predict(...)")
        if rows.n_entities != u.shape[0] or rows.n_features != self.n_rating_features_:
            raise ValueError(
                f"rating_features has {rows.n_entities} rows of {rows.n_features} features; "
                f"expected {u.shape[0]} rows of {self.n_rating_features_}"
            )
        return out + self._rating_part(rows.indptr, rows.indices, self.P[u] + self.Q[i])

    def _rating_part(self, indptr, indices, PQ: np.ndarray) -> np.ndarray:
        """The rating block's mean part for binary rows (indptr, indices) beside P + Q rows."""
        n = indptr.shape[0] - 1
        rows = np.repeat(np.arange(n), np.diff(indptr))
        XV = np.zeros((n, self.V_rating_.shape[1]))  # (n, k·S)
        np.add.at(XV, rows, self.V_rating_[indices])
        X2V2 = np.zeros_like(XV)
        np.add.at(X2V2, rows, self.V_rating_[indices] ** 2)
        lin = np.bincount(rows, weights=self.w_rating_[indices], minlength=n)
        return lin + 0.5 * (XV**2 - X2V2).sum(1) + (XV * PQ).sum(1)

    def _score_rows(self, u: np.ndarray) -> np.ndarray:
        """FactorModel's scores, plus with a rating block its part for every known user as of
        the training rows' highest feature index (for :func:`~mfrec.data.rating_dates`, the
        latest period): what :meth:`score_all` and :meth:`recommend` rank by."""
        S = super()._score_rows(u)  # (len(u), n_items)
        if self.factor_form:
            return S
        n, latest = self.n_items, self._latest
        indptr = np.arange(n + 1, dtype=np.int64) * latest.size
        indices = np.tile(latest, n)
        for row in np.flatnonzero(u != UNKNOWN):
            PQ = self.P[u[row]][None, :] + self.Q  # (n_items, k·S)
            S[row] += self._rating_part(indptr, indices, PQ)
        return S


def rated_ids(rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The id part of a block as CSR (indptr, indices): row e holds its own id e when it has
    training ratings, else nothing. An unrated row's id coordinates would only be drawn from
    their prior, adding noise of that prior's variance to its predictions; without them a
    row with no ratings (a cold item with features) is predicted from its features alone."""
    rated = np.bincount(rows, minlength=n) > 0
    indptr = np.concatenate([[0], np.cumsum(rated)]).astype(np.int64)
    return indptr, np.flatnonzero(rated).astype(np.int64)


def _side_parts(
    side: str,
    rows: np.ndarray,
    other: np.ndarray,
    n_rows: int,
    n_other: int,
    features: Features | None,
    implicit: bool,
) -> list[tuple[str, np.ndarray, np.ndarray, int, bool]]:
    """One side's parts for :func:`entity_block`, ``side`` "user" (``rows`` u, ``other`` i) or
    "item" (the other way round): its id (if it has ratings, see :func:`rated_ids`), its
    ``features`` and, when ``implicit``, the ``other`` entities it shares a training rating
    with (normalised)."""
    parts = [(side, *rated_ids(rows, n_rows), n_rows, False)]
    if features is not None:
        _check_rows(f"{side}_features", features, n_rows)
        parts.append(
            (f"{side} features", features.indptr, features.indices, features.n_features, False)
        )
    if implicit:
        sets = sets_by_row(rows, other, n_rows, n_other)
        name = {"user": "implicit N(u)", "item": "raters R(i)"}[side]
        parts.append((name, *sets, n_other, True))
    return parts


def fm_blocks(
    u: np.ndarray,
    i: np.ndarray,
    n_users: int,
    n_items: int,
    user_features: Features | None,
    item_features: Features | None,
    implicit: bool,
    item_implicit: bool,
    rating_features: Features | None = None,
) -> tuple[list, np.ndarray, list[str]]:
    """The user and item blocks (and a block of the ratings themselves, with
    ``rating_features``): per block (CSR indptr, global indices, values, rows, kernel
    :data:`Block`), each global feature's group, and the group names."""
    user_parts = _side_parts("user", u, i, n_users, n_items, user_features, implicit)
    item_parts = _side_parts("item", i, u, n_items, n_users, item_features, item_implicit)
    layout = [(user_parts, u, n_users), (item_parts, i, n_items)]
    if rating_features is not None:
        _check_rows("rating_features", rating_features, u.shape[0])
        rf = rating_features
        n = u.shape[0]
        layout.append(
            ([("rating features", rf.indptr, rf.indices, rf.n_features, False)], np.arange(n), n)
        )
    blocks, groups, grp, off = [], [], [], 0
    for parts, row_of, n_rows in layout:
        ptr, idx, val, names, widths = entity_block(n_rows, parts)
        width = sum(widths)
        kernel = block_from_rows(ptr, idx, val, width, row_of, off)
        blocks.append((ptr, idx + off, val, n_rows, kernel))
        for name, n in zip(names, widths, strict=True):
            grp.append(np.full(n, len(groups), dtype=np.int64))
            groups.append(name)
        off += width
    return blocks, np.concatenate(grp), groups
