"""The conditional search space samples only the chosen family's parameters."""

import optuna

from mlauto.tune import ConditionalSpace, trial_params
from tests.helpers import TUNE_FAMILIES


def test_conditional_space_samples_only_the_chosen_familys_params():
    space = ConditionalSpace(TUNE_FAMILIES)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        space(trial)
        family, params = trial_params(trial.params, TUNE_FAMILIES)
        other = next(f for f in TUNE_FAMILIES if f != family)
        assert not any(k.startswith(other + ".") for k in trial.params)
        assert set(params) == set(TUNE_FAMILIES[family]["space"]) | set(TUNE_FAMILIES[family]["fixed"])
        study.tell(trial, 0.0)
