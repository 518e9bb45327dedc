"""Model families: one module each, registered by name in ``FAMILIES`` when this package is imported.

All have scikit-learn's fit/predict face. A new built-in family is one module here (every module of
this package is imported) plus one ``mlauto/conf/model/<name>.yaml``; a user's family is a module of their own listed in the
``plugins`` config key plus a ``model/<name>.yaml`` in their config folder.
"""

from mlauto.registry import import_members
from mlauto.models.families.base import (
    FAMILIES,
    Family,
    build_estimator,
    cap_int,
    families_for_task,
    plan_families,
    point_categorical,
)
from mlauto.models.families.extra_trees import ExtraTreesFamily
from mlauto.models.families.hist_gb import HistGradientBoostingFamily
from mlauto.models.families.knn import KNeighborsFamily
from mlauto.models.families.logreg import LinearFamily, LogisticRegressionFamily
from mlauto.models.families.mlp import TorchMLPFamily
from mlauto.models.families.random_forest import RandomForestFamily
from mlauto.models.families.svm import SVMFamily

import_members(__name__, __path__)  # every module here is a member: adding one is adding a file

__all__ = ["FAMILIES", "ExtraTreesFamily", "Family", "HistGradientBoostingFamily", "KNeighborsFamily",
           "LinearFamily", "LogisticRegressionFamily", "RandomForestFamily", "SVMFamily", "TorchMLPFamily",
           "build_estimator", "cap_int", "families_for_task", "plan_families", "point_categorical"]
