"""mlauto: automated ML workflow on Ray, from raw data to a monitored, self-retraining model."""

__version__ = "0.1.0"
