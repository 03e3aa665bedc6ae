"""Early stopping on a validation set: track the best epoch, stop after ``patience`` bad ones."""

from __future__ import annotations

import numpy as np

from mfrec.reference.metrics import rmse

STATE = ("P", "Q", "bu", "bi")


class EarlyStopping:
    """Watches validation RMSE after every epoch and keeps a copy of the best parameters."""

    def __init__(self, eval_set, patience: int | None) -> None:
        users, items, ratings = eval_set
        self.users = np.asarray(users)
        self.items = np.asarray(items)
        self.ratings = np.asarray(ratings, dtype=np.float64)
        if not (self.users.shape == self.items.shape == self.ratings.shape):
            raise ValueError("eval_set=(users, items, ratings) must hold arrays of one length")
        if patience is not None and (isinstance(patience, bool) or patience < 1):
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        self.patience = patience
        self.best_rmse = np.inf
        self.best_epoch = -1
        self.history: list[float] = []

    def update(self, epoch: int, model) -> bool:
        """Record this epoch's validation RMSE; True when training should stop."""
        val = rmse(self.ratings, model.predict(self.users, self.items))
        self.history.append(val)
        if val < self.best_rmse:
            self.best_rmse, self.best_epoch = val, epoch
            self._best = capture(model)
        return self.patience is not None and epoch - self.best_epoch >= self.patience

    def restore(self, model) -> None:
        """Put the best epoch's parameters back into ``model`` (in place, same arrays)."""
        if hasattr(model, "module"):
            model.module.load_state_dict(self._best)
            model._sync_numpy()
            return
        for name in STATE:
            getattr(model, name)[...] = self._best[name]


def capture(model) -> dict:
    """Copies of the parameters: a torch model's state dict, else the arrays P, Q, bu, bi."""
    if hasattr(model, "module"):
        return {k: v.detach().clone() for k, v in model.module.state_dict().items()}
    return {name: getattr(model, name).copy() for name in STATE}
