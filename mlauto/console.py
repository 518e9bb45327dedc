"""A quiet console: one line per stage, Tune's progress line, and the few lines that say where things are.

Third-party output a user cannot act on is filtered at its source, not hidden by raising log levels:
TensorBoardX's warning about Tune's ``history`` list, MLflow's pickle notice, and (when stdout is not a
terminal) progress bars with escape codes from Ray Data, tqdm and MLflow downloads and Ray's coloured
worker prefixes. Filtered records still reach the log file: the run's file handler is attached to Ray's
and MLflow's own loggers, which do not propagate to the root.
"""

from __future__ import annotations

import logging
import os
import re
import sys

# Messages dropped from the console (still written to the log file): (logger prefix, text in the message).
NOISE: tuple[tuple[str, str], ...] = (
    ("ray.tune", "You are trying to log an invalid value (ray/tune/history"),
    ("mlflow", "Saving scikit-learn models in the pickle or cloudpickle format"),
    ("ray.data", "Progress will be logged because stdout is a non-interactive terminal"),
    ("ray.data", "Progress bars disabled. To enable"),
)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
OWN_HANDLER_LOGGERS = ("ray", "mlflow")  # they log through their own handlers, not the root's


class NoiseFilter(logging.Filter):
    """Drops :data:`NOISE` records; put on console handlers only. With ``strip_ansi`` (stdout is not a
    terminal) escape codes are taken out of the message (Ray colours its dashboard URL)."""

    def __init__(self, strip_ansi: bool = False) -> None:
        super().__init__()
        self.strip_ansi = strip_ansi

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if self.strip_ansi and isinstance(record.msg, str) and "\x1b[" in record.getMessage():
            record.msg, record.args = ANSI.sub("", record.getMessage()), None
        if not any(name == p or name.startswith(p + ".") for p, _ in NOISE):
            return True
        message = record.getMessage()
        return not any((name == p or name.startswith(p + ".")) and text in message for p, text in NOISE)


def quiet_env(tty: bool) -> dict[str, str]:
    """Environment for this process and the Ray workers it starts (they inherit it): no escape codes
    and no progress bars when stdout is not a terminal."""
    if tty:
        return {}
    return {"RAY_COLOR_PREFIX": "0", "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def install(tty: bool | None = None) -> None:
    """Quiet the console of this process; call before Ray starts (its workers inherit the environment)."""
    tty = sys.stdout.isatty() if tty is None else tty
    for key, value in quiet_env(tty).items():
        os.environ.setdefault(key, value)
    import mlflow  # noqa: F401 - configures its logger at import: filter after that
    import ray  # noqa: F401 - likewise
    if not tty:
        try:
            from ray.data import DataContext

            DataContext.get_current().enable_progress_bars = False
        except ImportError:  # ray without ray[data]
            pass
    root = logging.getLogger()
    files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    noise = NoiseFilter(strip_ansi=not tty)
    own = [logging.getLogger(n) for n in sorted(logging.root.manager.loggerDict)
           if n.split(".")[0] in OWN_HANDLER_LOGGERS]  # "ray", "ray.data", "mlflow", ...: those with handlers
    for logger in (root, *[lg for lg in own if isinstance(lg, logging.Logger) and lg.handlers]):
        for handler in logger.handlers:
            if _is_console(handler) and not any(isinstance(f, NoiseFilter) for f in handler.filters):
                handler.addFilter(noise)
        if logger is not root and not logger.propagate:
            for handler in files:
                if handler not in logger.handlers:
                    logger.addHandler(handler)  # the log file keeps what the console leaves out


__all__ = ["NOISE", "NoiseFilter", "install", "quiet_env"]
