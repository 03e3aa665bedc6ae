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

Ordered probit (``likelihood="ordered"``, Albert & Chib 1993) for integer ratings of K distinct
values v₁ < … < v_K: a latent zₙ = ŷₙ + εₙ, εₙ ~ N(0, 1), and yₙ = v_k exactly when
c_{k−1} < zₙ ≤ c_k (c₀ = −∞, c_K = ∞). The unit noise fixes the scale and c₁ = 0 the location
(w₀, flat, carries it). One sweep, before the FM's hyper-parameters::

    1. (w₀, c₂..c_{K−1}) as one block, z integrated out: with ηₙ = ŷₙ − w₀ and d = c − w₀
       (so d₁ = −w₀; flat priors, unit Jacobian)
           L(d) = Σₙ log[Φ(d_{yₙ} − ηₙ) − Φ(d_{yₙ−1} − ηₙ)]      (class index yₙ = 1..K)
       is concave with a tridiagonal Hessian H; Newton finds its mode d̂, and one
       Metropolis–Hastings step proposes d' ~ t₂₀(d̂, (−H(d̂))⁻¹), accepted with probability
       min(1, exp(L(d') − L(d) + log q(d) − log q(d'))); then w₀ = −d₁, c = d − d₁.
    2. zₙ ~ N(ŷₙ, 1) truncated to (c_{yₙ−1}, c_{yₙ}), by inversion of Φ; eₙ = zₙ − ŷₙ.
    3. the FM's sweep above on z with α = 1 (w₀ again, by its Gibbs draw given z).

Albert & Chib's own cutpoint draw, c_k uniform between the largest z of class k and the
smallest of class k + 1, moves c_k by about the gap between two neighbouring latents, of
order 1/n (about 10⁻⁴ at 80,000 ratings) against a posterior sd of order 1/√n (10⁻²), so
the cutpoints (and w₀ with them) would need ~10⁴ sweeps to cross their posterior. The collapsed
block of step 1 moves them by a posterior sd at each accepted step (Cowles 1996 uses a
random-walk proposal in the same collapsed block; the Laplace t proposal accepts most steps,
and its tails, heavier than L's, keep p/q bounded). The prediction is the posterior mean of
the expected rating, E[y] = v₁ + Σ_{k=1}^{K−1} (v_{k+1} − v_k) Φ(ŷ − c_k), averaged over the
kept samples.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtr, ndtri

from mfrec._internal import check_ratings, njit, njit_inline
from mfrec.data.features import Features, sets_by_row
from mfrec.data.ids import UNKNOWN
from mfrec.reference.bayes import BayesianMF
from mfrec.reference.mf import check_query_index, extends
from mfrec.reference.svdpp import _check_rows

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

Block = tuple
"""A relation block for the kernels: (R_ptr, R_idx, C_ptr, C_row, C_val, row_of, off).

R_ptr/R_idx: each block row's ratings (CSR); C_ptr/C_row/C_val: each block feature's rows and
values (CSC); row_of: the block row of each rating (its user or item); off: the block's first
global feature index."""

MU0, GAMMA0, ALPHA_LAMBDA, BETA_LAMBDA = 0.0, 1.0, 1.0, 1.0
SQRT_2PI = float(np.sqrt(2.0 * np.pi))
LIKELIHOODS = ("gaussian", "ordered")
ORDERED_CHUNK = 1 << 21
"""Per-sample terms held at once by an ordered model's predictions (pairs per chunk × k·S)."""
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


# --- ordered probit (likelihood="ordered") -----------------------------------------------

MAX_CLASSES = 100
"""The most distinct rating values an ordered probit takes (one cutpoint between neighbours)."""


NEWTON_GAIN = 1e-9
"""The predicted log-likelihood gain below which :func:`cutpoint_mode` stops."""
PROPOSAL_DF = 20.0
"""Degrees of freedom of the cutpoints' t proposal (:func:`draw_cutpoints`)."""


def ordinal_classes(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each rating's class in 0..K−1, the K values v₁ < … < v_K) for integer ratings of K
    distinct values (2 ≤ K ≤ :data:`MAX_CLASSES`): the classes are the values the ratings
    take, so a value of the scale no rating has gets no class (its probability would go to
    0); a ``ValueError`` naming the first rating that is not an integer, or the values."""
    bad = np.flatnonzero(r != np.round(r))
    if bad.size:
        n = int(bad[0])
        raise ValueError(
            f"likelihood='ordered' needs integer ratings: rating {float(r[n])!r} (row {n}) is "
            "not an integer"
        )
    values, y = np.unique(r, return_inverse=True)
    if not 2 <= values.shape[0] <= MAX_CLASSES:
        raise ValueError(
            f"likelihood='ordered' needs 2 to {MAX_CLASSES} distinct rating values; the ratings "
            f"have {values.shape[0]}, from {values[0]:g} to {values[-1]:g}"
        )
    return y.astype(np.int64), values


def _bounds(d: np.ndarray, y: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each rating's standardised interval (a, b) = (d_{y−1} − η, d_y − η), d₀ = −∞, d_K = ∞."""
    ext = np.concatenate([[-np.inf], d, [np.inf]])
    return ext[y] - eta, ext[y + 1] - eta


@njit
def _ordinal_sums(ext, y, eta, out):
    """Per class c (``out`` (6, K), zeroed here), over its ratings with standardised interval
    (a, b) = (ext[c] − η, ext[c + 1] − η), mass P = Φ(b) − Φ(a) (from the lower tail on the
    side where the interval lies: mirrored when a > 0), gₐ = φ(a)/P, g_b = φ(b)/P: Σ g_b,
    Σ gₐ, Σ (b g_b + g_b²), Σ (a gₐ − gₐ²), Σ gₐg_b, Σ log P (−∞ for a mass that underflows;
    (±∞)·0 counts 0)."""
    out[:] = 0.0
    r = 1.0 / np.sqrt(2.0)
    for n in range(y.shape[0]):
        c = y[n]
        a, b = ext[c] - eta[n], ext[c + 1] - eta[n]
        if a > 0:
            P = 0.5 * (math.erfc(a * r) - math.erfc(b * r))
        elif b < 0:
            P = 0.5 * (math.erfc(-b * r) - math.erfc(-a * r))
        else:
            P = 1.0 - 0.5 * math.erfc(b * r) - 0.5 * math.erfc(-a * r)
        if P <= 0.0:
            out[5, c] = -np.inf
            P = 1e-300
        else:
            out[5, c] += math.log(P)
        ga = math.exp(-0.5 * a * a) / SQRT_2PI / P
        gb = math.exp(-0.5 * b * b) / SQRT_2PI / P
        out[0, c] += gb
        out[1, c] += ga
        out[2, c] += gb * gb + (b * gb if gb > 0.0 else 0.0)
        out[3, c] += (a * ga if ga > 0.0 else 0.0) - ga * ga
        out[4, c] += ga * gb
    return out


def ordinal_loglik(
    d: np.ndarray, y: np.ndarray, eta: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """L(d) = Σₙ log[Φ(d_{yₙ} − ηₙ) − Φ(d_{yₙ−1} − ηₙ)] with z integrated out, its gradient and
    its Hessian in the K − 1 cutpoints d (−∞ when d is not increasing). With Pₙ the mass,
    gₐ = φ(a)/P, g_b = φ(b)/P: ∂L/∂d_j = Σ_{y=j} g_b − Σ_{y=j+1} gₐ,
    ∂²L/∂d_j² = −Σ_{y=j}(b g_b + g_b²) + Σ_{y=j+1}(a gₐ − gₐ²),
    ∂²L/∂d_j∂d_{j+1} = Σ_{y=j+1} gₐ g_b (one class between them; tridiagonal)."""
    m = d.shape[0]
    grad, hess = np.zeros(m), np.zeros((m, m))
    if np.any(np.diff(d) <= 0):
        return -np.inf, grad, hess
    ext = np.concatenate([[-np.inf], d, [np.inf]])
    up, low, up2, low2, cross, logP = _ordinal_sums(ext, y, eta, np.empty((6, m + 1)))
    grad = up[:m] - low[1:]
    hess[np.arange(m), np.arange(m)] = -up2[:m] + low2[1:]
    hess[np.arange(m - 1), np.arange(1, m)] = cross[1:m]
    hess[np.arange(1, m), np.arange(m - 1)] = cross[1:m]
    return float(logP.sum()), grad, hess


def cutpoint_mode(d: np.ndarray, y: np.ndarray, eta: np.ndarray, start: tuple) -> tuple:
    """(d̂, L(d̂), H(d̂)): Newton's method from d (``start``: L, its gradient g and Hessian H
    there) on the concave L of :func:`ordinal_loglik`, a step halved while it would lower L
    or break the order, until the step's predicted gain −½gᵀH⁻¹g is below
    :data:`NEWTON_GAIN` (L's rounding over many ratings is larger)."""
    L, g, H = start
    for _ in range(50):
        step = np.linalg.solve(H, g)
        if -0.5 * float(g @ step) < NEWTON_GAIN:
            break
        t = 1.0
        while True:
            trial = d - t * step
            L_t, g_t, H_t = ordinal_loglik(trial, y, eta)
            if L_t >= L:
                break
            t /= 2
            if t < 1e-6:  # no ascent left along the Newton step
                return d, L, H
        d, L, g, H = trial, L_t, g_t, H_t
    return d, L, H


def draw_cutpoints(
    rng: np.random.Generator, d: np.ndarray, y: np.ndarray, eta: np.ndarray
) -> tuple[np.ndarray, bool]:
    """One Metropolis–Hastings draw of the cutpoints d | η with z integrated out (flat prior):
    an independence proposal, Student's t with ν = :data:`PROPOSAL_DF` at the mode d̂ of L
    with scale (−H(d̂))⁻¹ (the Laplace approximation, heavier-tailed), accepted with
    probability min(1, exp(L(d') − L(d) + log q(d) − log q(d'))),
    log q(x) = −½(ν + m) log(1 + (x − d̂)ᵀ(−H)(x − d̂)/ν). L is concave, so its tails fall off
    at least exponentially and p/q stays bounded: the chain leaves any start at once. Returns
    (d after the step, accepted)."""
    L_old, g, H = ordinal_loglik(d, y, eta)
    mode, _, H = cutpoint_mode(d, y, eta, (L_old, g, H))
    A, m, nu = -H, d.shape[0], PROPOSAL_DF  # the proposal's precision
    chol = np.linalg.cholesky(A)
    xi = rng.standard_normal(m)
    proposal = mode + np.linalg.solve(chol.T, xi) * np.sqrt(nu / rng.chisquare(nu))

    def log_q(x):
        dx = x - mode
        return -0.5 * (nu + m) * np.log1p(float(dx @ A @ dx) / nu)

    L_new = ordinal_loglik(proposal, y, eta)[0]
    log_ratio = L_new - L_old + log_q(d) - log_q(proposal)
    if np.log(rng.random()) < log_ratio:
        return proposal, True
    return d, False


def draw_latent(
    rng: np.random.Generator, d: np.ndarray, y: np.ndarray, eta: np.ndarray
) -> np.ndarray:
    """zₙ ~ N(ηₙ, 1) truncated to (d_{yₙ−1}, d_{yₙ}), by inversion: x = Φ⁻¹(Φ(a) + u(Φ(b) −
    Φ(a))) on the standardised interval (a, b), mirrored to (−b, −a) when a > 0 so that both
    ends sit in the lower tail, where Φ and Φ⁻¹ keep their relative precision; an interval
    whose mass underflows (beyond ~37 sd) gives its end nearest the mean. z = η + x."""
    a, b = _bounds(d, y, eta)
    flip = a > 0
    lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
    p_lo, p_hi = ndtr(lo), ndtr(hi)
    x = ndtri(p_lo + rng.random(y.shape[0]) * (p_hi - p_lo))
    x = np.where(p_hi > p_lo, x, hi)
    x = np.clip(x, lo, hi)
    return eta + np.where(flip, -x, x)


def expected_rating(latent: np.ndarray, cuts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """E[y] = v₁ + Σ_k (v_{k+1} − v_k) Φ(ŷ − c_k) per sample (P(y > v_k) = Φ(ŷ − c_k)),
    averaged over the samples: ``latent`` (n, S), ``cuts`` (S, K − 1), ``values`` (K,)."""
    terms = ndtr(latent[:, :, None] - cuts[None, :, :])  # (n, S, K − 1)
    return values[0] + (terms @ np.diff(values)).mean(1)


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

    ``likelihood="ordered"`` (integer ratings, K distinct values v₁ < … < v_K in ``values_``)
    is an ordered probit instead (Albert & Chib 1993): a latent zₙ = ŷₙ + εₙ, εₙ ~ N(0, 1), and
    yₙ = v_k when c_{k−1} < zₙ ≤ c_k (c₀ = −∞, c_K = ∞, c₁ = 0 pinned: w₀ carries the location).
    Each sweep, before the FM's: (w₀, c₂..c_{K−1}) as one block from p(· | ŷ − w₀) with z
    integrated out (:func:`draw_cutpoints`, Metropolis–Hastings), then every zₙ from its
    truncated normal (:func:`draw_latent`) and eₙ = zₙ − ŷₙ; then the FM's sweep on z with
    α = 1. The prediction is the posterior mean of the expected rating, (1/S) Σₛ [v₁ +
    Σ_k (v_{k+1} − v_k) Φ(ŷˢ − c_kˢ)], which no factor model holds: :meth:`predict`,
    :meth:`score_all` and :meth:`recommend` compute it from the kept samples (an unknown user
    or item: its block's part left out, as a row with no id entry), P, Q, bu, bi hold the
    latent ŷ's average (:meth:`similar_items` compares Q), and the model cannot be saved or
    fold a user in.
    """

    @extends(BayesianMF, fixed=("ard",), n_samples=200)
    def __init__(self, *, likelihood: str = "gaussian", **params) -> None:
        super().__init__(**params)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if likelihood == "ordered" and self.alpha is not None:
            raise ValueError(
                "likelihood='ordered' fixes the latent noise precision at 1: leave alpha unset"
            )
        self.likelihood = likelihood
        if likelihood == "ordered":
            self.refuses = {"fold-in": "its predictions are an ordered probit's expected ratings"}

    @property
    def ordered(self) -> bool:
        """Whether this is an ordered probit (``likelihood="ordered"``)."""
        return self.likelihood == "ordered"

    def describe(self) -> str:
        groups = getattr(self, "groups_", None)
        name = "BayesianFM, ordered probit" if self.ordered else "BayesianFM"
        return f"{name} ({' + '.join(groups)})" if groups else name

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
        the chain there, once a sample is kept). ``history_``: each sweep's training MSE
        (ordered: of that sample's expected rating); ``alpha_``: the last α; ``w0_``, ``w_``,
        ``V_`` (ordered, and ``c_``, the cutpoints c₁..c_{K−1}): the current (after fit, the
        last) sample; ordered, ``cutpoints_`` (S, K − 1) of the kept samples and
        ``accept_rate_``, the share of sweeps whose cutpoint proposal was accepted."""
        u, i, r = check_ratings(u, i, r, np.float64)
        if self.ordered:
            y, self.values_ = ordinal_classes(r)
        blocks, grp, self.groups_ = fm_blocks(
            u, i, n_users, n_items, user_features, item_features, implicit, item_implicit,
            rating_features,
        )  # fmt: skip
        self.factor_form = rating_features is None and not self.ordered
        self.dated_ = rating_features is not None
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
        if self.ordered:  # z = ŷ to start; the cutpoints from the class shares
            z = r - e
            e = np.zeros(r.shape[0])
            cuts: np.ndarray = ndtri(np.cumsum(np.bincount(y))[:-1] / r.shape[0])
            cuts -= cuts[0]
            accepted = 0
        n_groups = len(self.groups_)
        mu_w, lam_w = np.zeros(n_groups), np.ones(n_groups)
        mu_v, lam_v = np.zeros((n_groups, k)), np.ones((n_groups, k))
        n_keep = -(-self.n_samples // self.thin)
        off = int(blocks[-1][4][6])  # the rating block's first feature (when there is one)
        D_r = D - off if rating_features is not None else 0
        self._rating_samples = [np.zeros(D_r), np.empty((D_r, k * n_keep))]
        if self.ordered:  # per kept sample: user part (w₀ in), item part, w₀, c, rating w
            self._ordinal = [np.empty((n_users, n_keep)), np.empty((n_items, n_keep)),
                             np.empty(n_keep), np.empty((cuts.shape[0], n_keep)),
                             np.empty((D_r, n_keep))]  # fmt: skip
        alpha = 1.0 if self.alpha is None else self.alpha
        for sweep in range(self.burn_in + self.n_samples):
            if self.ordered:
                eta = z - e - w0  # ŷ without w₀
                d, took = draw_cutpoints(rng, np.asarray(cuts - w0), y, eta)
                w0, cuts, accepted = -d[0], d - d[0], accepted + took
                z = draw_latent(rng, cuts, y, eta + w0)
                e = z - eta - w0
            elif self.alpha is None:
                alpha = draw_alpha(rng, e, self.a0, self.b0)
            mu_w, lam_w, mu_v, lam_v = draw_hyper(rng, w, V, grp, lam_w, lam_v)
            normals = rng.standard_normal(1 + D + D * k)
            w0 = _sweep(
                z if self.ordered else r, e, w, V, grp, mu_w, lam_w, mu_v, lam_v, alpha,
                normals, kernel_blocks, states_t, caches, w0,
            )  # fmt: skip
            if self.ordered:
                fit = expected_rating((z - e)[:, None], cuts[None, :], self.values_)
                self.history_.append(float(np.mean((fit - r) ** 2)))
            else:
                self.history_.append(float(e @ e) / r.shape[0])
            self.w0_, self.w_, self.V_ = w0, w, V  # the current sample (w, V updated in place)
            if self.ordered:
                self.c_ = cuts
            bu = w0 - mu + lin_u + 0.5 * (q_u**2 - s_u).sum(1)  # (n_users,)
            bi = lin_i + 0.5 * (q_i**2 - s_i).sum(1)  # (n_items,)
            self._current = (q_u, q_i, bu, bi)  # the user-item part of this sample
            cols = self._keep(sweep, q_u, q_i, bu, bi)
            if cols is not None:
                self._rating_samples[0] += w[D - D_r :]
                self._rating_samples[1][:, cols] = V[D - D_r :]
                if self.ordered:
                    parts = (bu + mu, bi, w0, cuts, w[D - D_r :])
                    for store, x in zip(self._ordinal, parts, strict=True):
                        store[..., self._kept - 1] = x
            if callback is not None and callback(sweep, self) and self._kept:
                break  # the callback ends the chain (once a sample is kept)
        self._finish(alpha)
        if rating_features is not None:
            self.w_rating_ = self._rating_samples[0] / self._kept  # (D_r,) the mean w
            self.V_rating_ = self._rating_samples[1][:, : k * self._kept] / np.sqrt(self._kept)
            self.n_rating_features_ = rating_features.n_features
            self._latest = np.unique(rating_features.indices)[-1:]  # (0 or 1,)
        del self._rating_samples
        if self.ordered:
            S = self._kept
            A, B, W0, C, W_r = self._ordinal
            self.user_part_, self.item_part_ = A[:, :S].copy(), B[:, :S].copy()
            self.w0_samples_, self.cutpoints_ = W0[:S].copy(), C[:, :S].T.copy()
            self.w_rating_samples_ = W_r[:, :S].copy()
            self.accept_rate_ = accepted / (sweep + 1)  # sweeps run (a callback may end it)
            del self._ordinal
        return self

    def predict(self, users, items, rating_features: Features | None = None) -> np.ndarray:
        """FactorModel's predict, plus (a model fit with ``rating_features``) the rating
        block's part, from the rows of ``rating_features`` (one per queried pair); ordered,
        the expected rating (see the class doc)."""
        if self.dated_ if self.ordered else not self.factor_form:
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
        Xw̄ + ½Σ[(XV)² − X²V²] + (XV)·(Pᵤ + Qᵢ), V the samples side by side over √S; ordered,
        the expected rating."""
        if self.ordered:
            known = np.ones(u.shape[0], dtype=bool)
            rows = self._query_rows(u.shape[0]) if self.dated_ else None
            return self._expected(u, i, known, known, rows)
        out = super().raw_predict(u, i)
        if self.factor_form:
            return out
        indptr, indices = self._query_rows(u.shape[0])
        return out + self._rating_part(indptr, indices, self.P[u] + self.Q[i])

    def _query_rows(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """CSR (indptr, indices) of the queried pairs' ``rating_features`` given to
        :meth:`predict`, checked against ``n`` pairs and the training vocabulary."""
        rows = getattr(self, "_query", None)
        if rows is None:
            raise ValueError("this BayesianFM was fit with rating_features: use predict(...)")
        if rows.n_entities != n or rows.n_features != self.n_rating_features_:
            raise ValueError(
                f"rating_features has {rows.n_entities} rows of {rows.n_features} features; "
                f"expected {n} rows of {self.n_rating_features_}"
            )
        return rows.indptr, rows.indices

    def _rating_xv(self, indptr, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(each entry's row, XV, X²V²) of binary rows (indptr, indices) and ``V_rating_``."""
        n = indptr.shape[0] - 1
        rows = np.repeat(np.arange(n), np.diff(indptr))
        XV = np.zeros((n, self.V_rating_.shape[1]))  # (n, k·S)
        np.add.at(XV, rows, self.V_rating_[indices])
        X2V2 = np.zeros_like(XV)
        np.add.at(X2V2, rows, self.V_rating_[indices] ** 2)
        return rows, XV, X2V2

    def _rating_part(self, indptr, indices, PQ: np.ndarray) -> np.ndarray:
        """The rating block's mean part for binary rows (indptr, indices) beside P + Q rows."""
        rows, XV, X2V2 = self._rating_xv(indptr, indices)
        lin = np.bincount(rows, weights=self.w_rating_[indices], minlength=XV.shape[0])
        return lin + 0.5 * (XV**2 - X2V2).sum(1) + (XV * PQ).sum(1)

    def _expected(self, u, i, u_known, i_known, rows: tuple | None) -> np.ndarray:
        """The ordered model's posterior-mean expected rating of pairs (u, i), in chunks: per
        sample s, ŷˢ = aᵤˢ + bᵢˢ + qᵤˢ·qᵢˢ (aᵤ = w₀ + the user block's linear and pairwise
        part, bᵢ the item block's; an unknown side's part is left out, aᵤ → w₀), plus for
        ``rows`` (CSR indptr, indices) the rating block's Xwˢ + ½Σ[(XVˢ)² − X²Vˢ²] +
        XVˢ·(qᵤˢ + qᵢˢ); then
        :func:`expected_rating`. P, Q and V_rating_ hold the samples over √S, so each
        product of two of them is S times the sample's."""
        if "_samples" in self.__dict__:
            raise RuntimeError("an ordered BayesianFM predicts once fit has returned")
        S, k = self._kept, self.n_factors
        out = np.empty(u.shape[0])
        step = max(1, ORDERED_CHUNK // (k * S + S))
        for start in range(0, u.shape[0], step):
            c = slice(start, start + step)
            uk, ik = u_known[c, None], i_known[c, None]
            Pu = np.where(uk, self.P[u[c]], 0.0)  # (m, k·S)
            Qi = np.where(ik, self.Q[i[c]], 0.0)
            latent = np.where(uk, self.user_part_[u[c]], self.w0_samples_)  # (m, S)
            latent = latent + np.where(ik, self.item_part_[i[c]], 0.0)
            latent += S * (Pu * Qi).reshape(-1, S, k).sum(2)
            if rows is not None:
                ptr, idx = rows
                lo, hi = ptr[start], ptr[min(start + step, u.shape[0])]
                indptr, indices = ptr[c.start : c.stop + 1] - lo, idx[lo:hi]
                row_of, XV, X2V2 = self._rating_xv(indptr, indices)
                np.add.at(latent, row_of, self.w_rating_samples_[indices])
                T = 0.5 * (XV**2 - X2V2) + XV * (Pu + Qi)
                latent += S * T.reshape(-1, S, k).sum(2)
            out[c] = expected_rating(latent, self.cutpoints_, self.values_)
        return out

    def _predict_indices(self, users, items) -> np.ndarray:
        """FactorModel's, or (ordered) the expected rating, unknown sides left out."""
        if not self.ordered:
            return super()._predict_indices(users, items)
        self._check_fitted()
        u, u_known = check_query_index("users", users, self.n_users)
        i, i_known = check_query_index("items", items, self.n_items)
        if u.shape != i.shape:
            raise ValueError(f"users and items differ in length: {u.shape[0]}, {i.shape[0]}")
        self.n_unknown_ = int((~(u_known & i_known)).sum())
        rows = self._query_rows(u.shape[0]) if self.dated_ else None
        return self.clip(self._expected(u, i, u_known, i_known, rows))

    def recommend_new_user(self, items, ratings, k: int = 10, user_features=None):
        """FactorModel's fold-in; an ordered model refuses it (``ValueError``)."""
        if self.ordered:
            raise ValueError(f"a BayesianFM with likelihood='ordered' cannot fold a user in: "
                             f"{self.refuses['fold-in']}")  # fmt: skip
        return super().recommend_new_user(items, ratings, k, user_features)

    def _score_rows(self, u: np.ndarray) -> np.ndarray:
        """FactorModel's scores, plus with a rating block its part for every known user as of
        the training rows' highest feature index (for :func:`~mfrec.data.rating_dates`, the
        latest period): what :meth:`score_all` and :meth:`recommend` rank by."""
        if self.ordered:
            return self._ordered_rows(u)
        S = super()._score_rows(u)  # (len(u), n_items)
        if self.factor_form:
            return S
        n = self.n_items
        indptr, indices = self._latest_rows(n)
        for row in np.flatnonzero(u != UNKNOWN):
            PQ = self.P[u[row]][None, :] + self.Q  # (n_items, k·S)
            S[row] += self._rating_part(indptr, indices, PQ)
        return S

    def _latest_rows(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """CSR (indptr, indices) of ``n`` rating-block rows, each the training rows' highest
        feature index."""
        latest = self._latest
        return np.arange(n + 1, dtype=np.int64) * latest.size, np.tile(latest, n)

    def _ordered_rows(self, u: np.ndarray) -> np.ndarray:
        """An ordered model's (len(u), n_items) expected ratings (``UNKNOWN``: the user block
        left out), dated as of the latest period as the Gaussian scores are."""
        n = self.n_items
        items, every = np.arange(n), np.ones(n, dtype=bool)
        rows = self._latest_rows(n) if self.dated_ else None
        S = np.empty((u.shape[0], n))
        for row, user in enumerate(u):
            users = np.full(n, max(int(user), 0))
            S[row] = self._expected(users, items, every & (user != UNKNOWN), every, rows)
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
