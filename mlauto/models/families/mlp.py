"""The PyTorch MLP family. torch is imported when an MLP is built, not when this module is."""

from __future__ import annotations

from typing import Any

from mlauto.models.families.base import FAMILIES, Family, cap_int


@FAMILIES.register("mlp")
class TorchMLPFamily(Family):
    """The PyTorch MLP; a batch is at most a quarter of the training rows, so an epoch has a few steps."""

    name = "mlp"
    needs_scaling = True
    classifier = "mlauto.models.mlp:TorchMLPClassifier"
    regressor = "mlauto.models.mlp:TorchMLPRegressor"
    seed_param = "seed"
    accelerated = True
    # Seeded, and torch on CPU with the same thread count usually repeats bit for bit, but its kernels
    # may sum in another order on another CPU or torch build, and early stopping can then pick another
    # epoch: 1e-3 leaves room for that.
    reproduce_tolerance = 1e-3

    def space_for(self, space: dict[str, Any], n_rows: int, n_features: int) -> dict[str, Any]:
        return cap_int(space, "batch_size", max(8, n_rows // 4))

    def stopped_at(self, model: Any) -> int | None:
        """The epoch whose weights were kept (lowest inner validation loss)."""
        history = getattr(model, "history_", None)
        if not history:
            return None
        return int(min(history, key=lambda h: h["val_loss"])["epoch"])

    def fixed_length(self, params: dict[str, Any], length: int) -> dict[str, Any]:
        # patience = max_epochs: no early stop; the best epoch's weights on the inner split are still kept
        return {**params, "max_epochs": length, "patience": length}
