"""Runnable twin of docs/derivation.md: same sections, each ending in a max-abs-error check.

Run: python docs/derivation.py   (section 10 uses MovieLens 100k from $MFREC_DATA if present)

The slides' formulas as written (loss, gradients, the literal update) live beside the tests in
``tests/naive.py``: the package does not use them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from mfrec.data.features import Features
from mfrec.reference import MatrixFactorization, mse, rmse, top_k
from mfrec.reference.als import ALS, als_penalty_weights, csr_by_row
from mfrec.reference.kernels import _predict, _sgd_epoch
from mfrec.reference.logistic import LogisticMF, _logistic_epoch
from mfrec.reference.sampling import epoch_order, init_factors
from mfrec.reference.svdpp import _svdpp_epoch, svdpp_bags
from mfrec.torch_impl import MFModule, TorchMatrixFactorization
from mfrec.torch_impl.logistic import TorchLogisticMF
from mfrec.torch_impl.networks import (
    ConcatModule,
    EmbeddingMLPModule,
    TwoTowerModule,
    as_features,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import naive_networks  # noqa: E402
from naive import sgd_epoch_literal, sgd_step, slide_gradients, slide_loss  # noqa: E402
from naive_svdpp import sample_gradients, sample_loss, svdpp_epoch  # noqa: E402


def check(section: str, err: float) -> None:
    print(f"{section}: max abs error {err:.3e}")


rng = np.random.default_rng(0)
n_users, n_items, k = 6, 5, 3

# ## 1. The model
P = rng.normal(0, 0.5, (n_users, k))
Q = rng.normal(0, 0.5, (n_items, k))
users = np.arange(n_users).repeat(n_items)
items = np.tile(np.arange(n_items), n_users)
A_hat = P @ Q.T  # (users, items)
r_hat = _predict(
    users, items, P, Q, np.zeros(n_users), np.zeros(n_items), 0.0, False, np.empty(users.shape[0])
)
module = MFModule(P, Q, biased=False, mu=0.0)
with torch.no_grad():
    torch_r_hat = module(torch.from_numpy(users), torch.from_numpy(items)).numpy()
check("1. The model", max(np.abs(r_hat - A_hat.ravel()).max(), np.abs(torch_r_hat - r_hat).max()))

# ## 2. The loss and its gradients
u, i, r = 2, 3, 4.0
gP, gQ = slide_gradients(P[u], Q[i], r)
Pu = torch.tensor(P[u], requires_grad=True)
Qi = torch.tensor(Q[i], requires_grad=True)
loss = (r - (Pu * Qi).sum()) ** 2
loss.backward()
check(
    "2. The loss and its gradients",
    max(
        np.abs(gP - Pu.grad.numpy()).max(),
        np.abs(gQ - Qi.grad.numpy()).max(),
        abs(slide_loss(P[u], Q[i], r) - loss.item()),
    ),
)

# ## 3. The dropped factor 2
lr = 0.05
new_Pu, new_Qi = sgd_step(P[u], Q[i], r, lr)
check(
    "3. The dropped factor 2",
    max(np.abs(new_Pu - (P[u] - lr / 2 * gP)).max(), np.abs(new_Qi - (Q[i] - lr / 2 * gQ)).max()),
)

# ## 4. Random initialisation (slide step 3)
P0, Q0 = init_factors(np.random.default_rng(42), n_users, n_items, k, 0.1, np.float64)
again = np.random.default_rng(42)
check(
    "4. Random initialisation (slide step 3)",
    max(
        np.abs(P0 - again.normal(0, 0.1, (n_users, k))).max(),
        np.abs(Q0 - again.normal(0, 0.1, (n_items, k))).max(),
    ),
)

# ## 5. Sampling an observed rating (slide step 4)
order = epoch_order(np.random.default_rng(1), 10, shuffle=True)
check(
    "5. Sampling an observed rating (slide step 4)",
    float(np.abs(np.sort(order) - np.arange(10)).max()),
)

# ## 6. The update, and why it is simultaneous (slide step 5)
P1, Q1 = P.copy(), Q.copy()
_sgd_epoch(
    np.array([u]),
    np.array([i]),
    np.array([r]),
    np.array([0]),
    P1,
    Q1,
    np.zeros(n_users),
    np.zeros(n_items),
    0.0,
    lr,
    0.0,
    False,
)
P2, Q2 = P.copy(), Q.copy()
literal = (np.array([u]), np.array([i]), np.array([r]), np.array([0]), P2, Q2, lr, 0.0)
sgd_epoch_literal(*literal, np.zeros_like(Q2))
e = r - P[u] @ Q[i]
check(
    "6. The update, and why it is simultaneous (slide step 5)",
    max(np.abs(P1[u] - new_Pu).max(), np.abs(Q1[i] - new_Qi).max()),
)
print(
    f"   literal reading differs by {np.abs(Q2[i] - Q1[i]).max():.3e} "
    f"(predicted lr²·e²·|Qᵢ| = {np.abs(lr**2 * e**2 * Q[i]).max():.3e})"
)

# ## 7. Stopping (slide step 6)
obs_u = rng.integers(0, n_users, 60)
obs_i = rng.integers(0, n_items, 60)
obs_r = rng.integers(1, 6, 60).astype(float)
full = MatrixFactorization(n_factors=k, n_epochs=30, lr=0.05).fit(obs_u, obs_i, obs_r)
tol = min(full.history_[:10]) * 1.0000001
stopped = MatrixFactorization(n_factors=k, n_epochs=30, lr=0.05, tol=tol).fit(obs_u, obs_i, obs_r)
first_below = next(e for e, m in enumerate(full.history_) if m < tol)  # < 10 of the 30 epochs
check(
    "7. Stopping (slide step 6)",
    max(
        float(np.abs(np.array(stopped.history_) - full.history_[: len(stopped.history_)]).max()),
        abs(len(stopped.history_) - (first_below + 1)),  # stopped right after the first epoch < tol
    ),
)

# ## 8. Recommendation
scores = stopped.score_all(0)
seen = np.unique(obs_i[obs_u == 0])
best = top_k(scores, seen, 2)
brute = [j for j in np.argsort(-scores, kind="stable") if j not in seen][:2]
check("8. Recommendation", float(np.abs(best - np.array(brute)).max()))

# ## 9. MSE and RMSE
pred = stopped.predict(obs_u, obs_i)
check(
    "9. MSE and RMSE",
    max(
        abs(mse(obs_r, pred) - np.mean((obs_r - pred) ** 2)),
        abs(rmse(obs_r, pred) - np.sqrt(np.mean((obs_r - pred) ** 2))),
    ),
)

# ## 10. Why an Embedding layer *is* P
if os.environ.get("MFREC_DATA"):
    from mfrec.data import load_ml100k, train_test_split

    data = load_ml100k(download=False)
    tr, _ = train_test_split(len(data), 0.2, seed=0)
    train = data.subset(tr[:5000])
else:
    train = None
tu, ti, tr_ = (train.users, train.items, train.ratings) if train else (obs_u, obs_i, obs_r)
nu, ni = (data.n_users, data.n_items) if train else (n_users, n_items)
ref = MatrixFactorization(n_factors=k, n_epochs=2, lr=0.01).fit(tu, ti, tr_, nu, ni)
emb = TorchMatrixFactorization(n_factors=k, n_epochs=2, lr=0.01, mode="exact").fit(
    tu, ti, tr_, nu, ni
)
check(
    "10. Why an Embedding layer *is* P",
    max(np.abs(ref.P - emb.P).max(), np.abs(ref.Q - emb.Q).max()),
)

# ## 11. Biases: scikit-surprise's SVD rule
bP, bQ = P.copy(), Q.copy()
bu, bi, mu, reg = np.zeros(n_users), np.zeros(n_items), 3.5, 0.02
e = r - (mu + bu[u] + bi[i] + P[u] @ Q[i])
want_Pu, want_Qi = P[u] + lr * (e * Q[i] - reg * P[u]), Q[i] + lr * (e * P[u] - reg * Q[i])
_sgd_epoch(
    np.array([u]), np.array([i]), np.array([r]), np.array([0]), bP, bQ, bu, bi, mu, lr, reg, True
)
check(
    "11. Biases: scikit-surprise's SVD rule",
    max(
        np.abs(bP[u] - want_Pu).max(),
        np.abs(bQ[i] - want_Qi).max(),
        abs(bu[u] - lr * e),
        abs(bi[i] - lr * e),
    ),
)

# ## 12. What ALS really is
als = ALS(n_factors=k, n_iters=1, reg=0.1, weighted=True, biased=False).fit(obs_u, obs_i, obs_r)
lam = als_penalty_weights(np.bincount(obs_u, minlength=als.n_users), 0.1, True)
# After the item half-step, re-solve the users by hand: Pᵤ = (QᵀQ + λᵤI)⁻¹ Qᵀr over u's items.
by_hand = np.zeros_like(als.P)
for user in range(als.n_users):
    mask = obs_u == user
    Qu = als.Q[obs_i[mask]]  # (nᵤ, k)
    by_hand[user] = np.linalg.solve(Qu.T @ Qu + lam[user] * np.eye(k), Qu.T @ obs_r[mask])
als.solve_users(csr_by_row(obs_u, obs_i, obs_r, als.n_users))
check("12. What ALS really is", float(np.abs(als.P - by_hand).max()))

# ## 13. Liked or not: the log loss
lP, lQ = P.copy(), Q.copy()
lbu, lbi, lmu, y = rng.normal(0, 0.1, n_users), rng.normal(0, 0.1, n_items), 0.4, 1.0
z = lmu + lbu[u] + lbi[i] + P[u] @ Q[i]
e = y - 1 / (1 + np.exp(-z))  # e = y − σ(z) in place of r − r̂
want = (
    P[u] + lr * (e * Q[i] - reg * P[u]),
    Q[i] + lr * (e * P[u] - reg * Q[i]),
    lbu[u] + lr * (e - reg * lbu[u]),
    lbi[i] + lr * (e - reg * lbi[i]),
)
one = (np.array([u]), np.array([i]), np.array([y]), np.array([0]))
_logistic_epoch(*one, lP, lQ, lbu, lbi, lmu, lr, reg, True)
liked = (obs_r >= 4).astype(float)
kw = dict(n_factors=k, n_epochs=3, lr=0.05, reg=0.02)
ref_l = LogisticMF(**kw).fit(obs_u, obs_i, liked, n_users, n_items)
emb_l = TorchLogisticMF(**kw, mode="exact").fit(obs_u, obs_i, liked, n_users, n_items)
check(
    "13. Liked or not: the log loss",
    max(
        np.abs(lP[u] - want[0]).max(),
        np.abs(lQ[i] - want[1]).max(),
        abs(lbu[u] - want[2]),
        abs(lbi[i] - want[3]),
        np.abs(ref_l.P - emb_l.P).max(),
        np.abs(ref_l.Q - emb_l.Q).max(),
    ),
)


def forward_error(module, formula) -> float:
    """max |module(u, i) − formula(module, u, i)| over every pair (float64)."""
    with torch.no_grad():
        got = module(torch.from_numpy(users), torch.from_numpy(items)).numpy()
    return float(np.abs(got - formula(module, users, items)).max())


torch.manual_seed(0)
bias_mu = 3.5

# ## 14. Two towers
towers = TwoTowerModule(P, Q, bias_mu, True, (4, 3))
check("14. Two towers", forward_error(towers, naive_networks.two_tower))

# ## 15. Concatenation MLP (NCF)
ncf = ConcatModule(P, Q, bias_mu, True, (4, 3))
check("15. Concatenation MLP (NCF)", forward_error(ncf, naive_networks.concat_mlp))

# ## 16. Embedding-MLP over features
user_fields = as_features("user_features", rng.integers(0, 3, (n_users, 2)))
genre_lists = [rng.choice(4, size=int(rng.integers(0, 3)), replace=False) for _ in range(n_items)]
item_bags = as_features(
    "item_features",
    (np.cumsum([0] + [g.size for g in genre_lists]), np.concatenate(genre_lists).astype(int)),
)
emlp = EmbeddingMLPModule(P, Q, bias_mu, True, (4,), user_fields, item_bags, 2)
check("16. Embedding-MLP over features", forward_error(emlp, naive_networks.embedding_mlp))
# ## 17. SVD++ and feature embeddings: the slides' rule extended
sv_u, sv_i = np.array([0, 0, 1, 2]), np.array([1, 3, 3, 0])
sv_r = np.array([4.0, 2.0, 5.0, 3.0])
user_feats = Features(np.array([0, 1, 1, 3]), np.array([0, 0, 1]), ["f0", "f1"])
item_feats = Features(np.array([0, 2, 2, 3, 4]), np.array([0, 1, 1, 0]), ["g0", "g1"])
A, n_Y, G, n_Z = svdpp_bags(sv_u, sv_i, 3, 4, True, user_feats, item_feats, np.float64)
sv = {
    "P": rng.normal(0, 0.3, (3, k)), "Q": rng.normal(0, 0.3, (4, k)),
    "bu": np.zeros(3), "bi": np.zeros(4),
    "Y": rng.normal(0, 0.3, (n_Y, k)), "Z": rng.normal(0, 0.3, (n_Z, k)),
}  # fmt: skip
bags = [
    [
        list(zip(ix[a:b].tolist(), w[a:b].tolist(), strict=True))
        for a, b in zip(p[:-1], p[1:], strict=True)
    ]
    for p, ix, w in (A, G)
]
mu, lr, reg = 3.5, 0.05, 0.02
# the gradients above against autograd, for the second rating (user 0, item 3)
t = {n: torch.tensor(a, requires_grad=True) for n, a in sv.items()}
sample_loss(t, *bags, 0, 3, 2.0, mu, reg).backward()
g = sample_gradients(sv, *bags, 0, 3, 2.0, mu, reg)
grad_err = max(
    np.abs(g["P"] - t["P"].grad[0].numpy()).max(),
    np.abs(g["Q"] - t["Q"].grad[3].numpy()).max(),
    max(np.abs(d - t["Y"].grad[a].numpy()).max() for a, d in g["Y"].items()),
    max(np.abs(d - t["Z"].grad[z].numpy()).max() for z, d in g["Z"].items()),
)
# one epoch of the kernel (user blocks: 0, 0 | 1 | 2) against the rule written out
sv_order = np.arange(4)
ref_sv = {n: a.copy() for n, a in sv.items()}
svdpp_epoch(ref_sv, *bags, sv_u, sv_i, sv_r, sv_order, mu, lr, reg)
per_sample = {n: a.copy() for n, a in sv.items()}
svdpp_epoch(per_sample, *bags, sv_u, sv_i, sv_r, sv_order, mu, lr, reg, defer=False)
_svdpp_epoch(
    sv_u, sv_i, sv_r, sv_order, sv["P"], sv["Q"], sv["bu"], sv["bi"], sv["Y"], sv["Z"],
    *A, *G, mu, lr, reg,
)  # fmt: skip
check(
    "17. SVD++ and feature embeddings: the slides' rule extended",
    max(grad_err, max(np.abs(sv[n] - ref_sv[n]).max() for n in sv)),
)
print(
    "   Koren's per-sample Y steps differ by "
    f"{max(np.abs(per_sample[n] - ref_sv[n]).max() for n in sv):.3e} (second order in lr)"
)
