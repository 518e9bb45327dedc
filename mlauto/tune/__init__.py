"""Ray Tune search across model families, metrics and the final refit."""

from mlauto.tune.final import FinalModel, fit_final
from mlauto.tune.metrics import classification_metrics
from mlauto.tune.search import SearchResult, TrialResult, ConditionalSpace, run_search, trial_params

__all__ = [
    "FinalModel", "SearchResult", "TrialResult", "classification_metrics", "fit_final", "ConditionalSpace",
    "run_search", "trial_params",
]
