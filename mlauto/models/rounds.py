"""The boosting libraries' shared trial protocol, kept free of their imports (a trial of one library
never loads the other): early stopping's patience and when a booster reports to Tune.

A booster's ``fit(X, y, on_epoch=..., validation=(X_va, y_va))`` early-stops on ``validation`` and calls
``on_epoch(unit, partial_model)`` only at a scheduler's rungs (ASHA's milestones), not every round: on
2 cores a report per round would swamp the driver.
"""

from __future__ import annotations

from typing import Sequence

EARLY_STOPPING_ROUNDS = 50

# How often a trial reports: the rounds of one "fidelity" unit are n_estimators / RUNG_UNITS, and a
# report is sent only at the units in ``rungs`` and at the end.
RUNG_UNITS = 100


def rung_rounds(n_rounds: int, rungs: Sequence[int]) -> dict[int, int]:
    """Rounds done -> the rung (fidelity unit) to report at that round."""
    per_unit = max(1, int(n_rounds) // RUNG_UNITS)
    return {int(r) * per_unit: int(r) for r in rungs}
