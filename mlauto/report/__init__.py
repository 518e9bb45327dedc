"""The experiment report: one self-contained HTML file with the profile, leaderboard, fronts and errors."""

from mlauto.report.html import write_report
from mlauto.report.importance import feature_importance

__all__ = ["feature_importance", "write_report"]
