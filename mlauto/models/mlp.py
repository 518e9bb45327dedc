"""A PyTorch multilayer perceptron with scikit-learn's face, so it tunes and serves like any family."""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from torch import nn

from mlauto.models.history import epoch_history  # noqa: F401  (its old home)

logger = logging.getLogger(__name__)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_network(n_in: int, n_out: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


class _TorchMLP(BaseEstimator):
    """Feed-forward network trained with AdamW and early stopping on an inner validation split.

    Classifier and regressor share this loop; they differ in the targets, the output layer and the loss.
    ``history_`` keeps one record per epoch (train and validation loss) for learning curves.
    """

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 2,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        dropout: float = 0.1,
        max_epochs: int = 100,
        patience: int = 10,
        batch_size: int = 64,
        val_fraction: float = 0.15,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.hidden = hidden
        self.layers = layers
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device

    def _train(self, X: np.ndarray, targets: np.ndarray, n_out: int, loss_fn: nn.Module, stratify: np.ndarray | None,
               on_epoch: Callable[[int, Any], bool | None] | None) -> None:
        """``on_epoch(epoch, self)`` runs after every epoch with the model usable for ``predict``; it
        returning True stops training (how Tune's ASHA scheduler ends a trial early)."""
        torch.manual_seed(self.seed)
        device = resolve_device(self.device)
        # Shuffling happens where the data is: a CPU permutation copied to the GPU every epoch costs more
        # than a small network's epoch (bench/mlp_gpu_throughput.py).
        generator = torch.Generator(device=device).manual_seed(self.seed)
        X = np.asarray(X, dtype=np.float32)
        # Split indices only, then copy the data to the device once and slice it there: no host copies.
        tr, va = train_test_split(np.arange(len(X)), test_size=self.val_fraction, stratify=stratify,
                                  random_state=self.seed)
        x_all, y_all = torch.from_numpy(X).to(device), torch.from_numpy(targets).to(device)
        tr_idx, va_idx = torch.from_numpy(tr).to(device), torch.from_numpy(va).to(device)
        xt, yt, xv, yv = x_all[tr_idx], y_all[tr_idx], x_all[va_idx], y_all[va_idx]
        del x_all, y_all
        net = build_network(X.shape[1], n_out, self.hidden, self.layers, self.dropout).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best_loss, best_state, stale = float("inf"), copy.deepcopy(net.state_dict()), 0
        self.history_: list[dict[str, float]] = []
        for epoch in range(self.max_epochs):
            net.train()
            order = torch.randperm(len(xt), generator=generator, device=device)
            total = torch.zeros((), device=device)  # summed on the device: no host sync per batch
            for start in range(0, len(xt), self.batch_size):
                idx = order[start : start + self.batch_size]
                opt.zero_grad()
                loss = loss_fn(net(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                total.add_(loss.detach(), alpha=len(idx))
            net.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(net(xv), yv))
            self.history_.append({"epoch": epoch + 1, "train_loss": float(total) / len(xt), "val_loss": val_loss})
            if val_loss < best_loss - 1e-6:
                best_loss, best_state, stale = val_loss, copy.deepcopy(net.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
            if on_epoch is not None:
                self.network_ = net
                if on_epoch(epoch + 1, self):
                    break
        net.load_state_dict(best_state)
        self.network_ = net.to("cpu").eval()
        self.n_epochs_ = len(self.history_)
        self.best_val_loss_ = best_loss

    def _forward(self, X: np.ndarray) -> np.ndarray:
        device = next(self.network_.parameters()).device  # mid-training (on_epoch) it may be on a GPU
        with torch.no_grad():
            return self.network_(torch.from_numpy(np.asarray(X, dtype=np.float32)).to(device)).cpu().numpy()


class TorchMLPClassifier(ClassifierMixin, _TorchMLP):
    """The network with a softmax output and cross-entropy loss."""

    def fit(self, X: np.ndarray, y: np.ndarray, on_epoch: Callable[[int, Any], bool | None] | None = None
            ) -> "TorchMLPClassifier":
        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        codes = self.encoder_.transform(y).astype(np.int64)
        self._train(X, codes, len(self.classes_), nn.CrossEntropyLoss(), codes, on_epoch)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        logits = torch.from_numpy(self._forward(X))
        proba = torch.softmax(logits.double(), dim=1).numpy()
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class TorchMLPRegressor(RegressorMixin, _TorchMLP):
    """The network with one linear output and mean squared error on the standardized target
    (a raw target in the hundreds would make the first steps' gradients explode)."""

    def fit(self, X: np.ndarray, y: np.ndarray, on_epoch: Callable[[int, Any], bool | None] | None = None
            ) -> "TorchMLPRegressor":
        y = np.asarray(y, dtype=np.float64)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std()) or 1.0
        scaled = ((y - self.y_mean_) / self.y_scale_).astype(np.float32).reshape(-1, 1)
        self._train(X, scaled, 1, nn.MSELoss(), None, on_epoch)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._forward(X)[:, 0].astype(np.float64) * self.y_scale_ + self.y_mean_

