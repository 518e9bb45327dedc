"""The binary-task section of the experiment report: ROC, precision-recall and calibration on the test split.

Computed from the champion's probabilities of the positive class (the second of ``classes``, scikit-learn's
order), so the curves show what the threshold trade-off and the probabilities' honesty look like on rows
the search never saw.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlauto.report import plots

CALIBRATION_BINS = 10


def curves(y_true: Any, proba: Any, classes: Any) -> dict[str, Any]:
    """The three curves and their summary numbers for the positive class ``classes[1]``."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import (average_precision_score, brier_score_loss, precision_recall_curve, roc_auc_score,
                                 roc_curve)

    labels = list(classes)
    if len(labels) != 2:
        raise ValueError(f"a binary report needs 2 classes, got {len(labels)}: {labels}")
    positive = labels[1]
    truth = (np.asarray(y_true) == positive).astype(int)
    if truth.min() == truth.max():
        raise ValueError(f"the test split holds only one class ({labels[truth[0]]}): no ROC or PR curve")
    score = np.asarray(proba, dtype=float)
    score = score[:, 1] if score.ndim == 2 else score
    fpr, tpr, _ = roc_curve(truth, score)
    precision, recall, _ = precision_recall_curve(truth, score)
    bins = min(CALIBRATION_BINS, max(2, len(truth) // 10))
    observed, predicted = calibration_curve(truth, score, n_bins=bins, strategy="quantile")
    return {"positive": positive, "rows": len(truth), "prevalence": float(truth.mean()),
            "fpr": fpr, "tpr": tpr, "precision": precision, "recall": recall,
            "observed": observed, "predicted": predicted,
            "roc_auc": float(roc_auc_score(truth, score)), "average_precision": float(average_precision_score(truth, score)),
            "brier": float(brier_score_loss(truth, score))}


def figure(c: dict[str, Any]) -> str:
    """ROC, PR and calibration side by side, one PNG."""
    fig = plots.figure_grid(1, 3, width=12.0, height=4.0)
    roc, pr, cal = fig.axes
    roc.plot(c["fpr"], c["tpr"], color="tab:blue", label=f"AUC {c['roc_auc']:.3f}")
    roc.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.02))
    pr.step(c["recall"], c["precision"], where="post", color="tab:orange", label=f"AP {c['average_precision']:.3f}")
    pr.axhline(c["prevalence"], color="grey", linestyle="--", linewidth=1, label="chance")
    pr.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
    cal.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    cal.plot(c["predicted"], c["observed"], marker="o", color="tab:green", label=f"Brier {c['brier']:.3f}")
    cal.set(xlabel="predicted probability", ylabel="observed share", title="Calibration", xlim=(0, 1), ylim=(0, 1.02))
    for ax in fig.axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    return plots.to_png(fig)


def section_body(y_true: Any, proba: Any, classes: Any) -> tuple[str, str, pd.DataFrame, dict[str, Any]]:
    """(figure PNG, intro text, calibration table, facts) for :mod:`mlauto.report.html` to lay out."""
    c = curves(y_true, proba, classes)
    intro = (f"Test split, {c['rows']} rows; positive class {c['positive']!s} ({c['prevalence']:.1%} of rows). "
             "Left: the trade-off as the threshold moves; middle: precision against recall; right: the share of "
             "positives observed in each predicted-probability bin (on the diagonal when the probabilities are honest).")
    table = pd.DataFrame({"predicted probability": c["predicted"], "observed share": c["observed"]})
    facts = {"positive class": str(c["positive"]), "roc auc": c["roc_auc"], "average precision": c["average_precision"],
             "brier score": c["brier"]}
    return figure(c), intro, table, facts


__all__ = ["curves", "figure", "section_body"]
