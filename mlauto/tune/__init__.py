"""Ray Tune search across model families, metrics and the final refit."""

from mlauto.tune.final import FinalModel, fit_final
from mlauto.tune.metrics import classification_metrics, evaluate, regression_metrics
from mlauto.tune.search import (
    ConditionalSpace,
    SearchResult,
    SearchRun,
    TrialResult,
    run_search,
    trial_params,
    warm_start_point,
)

__all__ = [
    "ConditionalSpace", "FinalModel", "SearchResult", "SearchRun", "TrialResult", "classification_metrics", "fit_final",
    "run_search", "trial_params", "warm_start_point", "evaluate", "regression_metrics",
]
