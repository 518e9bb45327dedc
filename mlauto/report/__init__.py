"""The experiment report: one self-contained HTML file with the profile, leaderboard, fronts and errors."""

from mlauto.report.html import ReportContent, write_report
from mlauto.report.importance import feature_importance

__all__ = ["ReportContent", "feature_importance", "write_report"]
