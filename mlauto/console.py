"""A quiet console: one line per stage, Tune's progress line, and the few lines that say where things are.

Third-party output a user cannot act on is filtered at its source, not hidden by raising log levels:
TensorBoardX's warning about Tune's ``history`` list, MLflow's pickle notice and its database and
registry lines, Ray Data's execution lines, Optuna's study line, and (when stdout is not a terminal)
progress bars with escape codes from Ray Data, tqdm and MLflow downloads and Ray's coloured worker
prefixes. Filtered records still reach the log file: the run's file handler is attached to Ray's and
MLflow's own loggers, which do not propagate to the root.

Some of that noise is printed, not logged: Tune's boxed header and "View detailed results" lines,
MLflow's "Created version" (``eprint``), Serve's start-up banner, and every line Ray forwards from its
workers (a retrain's). :func:`filter_streams` wraps ``sys.stdout``/``sys.stderr`` of the command's
process so those lines go to the log file instead of the console.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any, Callable

# Messages dropped from the console (still written to the log file): (logger prefix, text in the message).
NOISE: tuple[tuple[str, str], ...] = (
    ("ray.tune", "You are trying to log an invalid value (ray/tune/history"),
    ("mlflow", "Saving scikit-learn models in the pickle or cloudpickle format"),
    ("ray.data", "Progress will be logged because stdout is a non-interactive terminal"),
    ("ray.data", "Progress bars disabled. To enable"),
)
# Ray Data's execution lines, MLflow's database set-up, Optuna's study: logged at INFO by loggers that
# have their own console handlers, or printed by a worker (then matched by :data:`PRINTED` too).
NOISE += (
    ("ray.data", "Starting execution of Dataset"),
    ("ray.data", "Execution plan of Dataset"),
    ("ray.data", "execution finished in"),
    ("mlflow", "Creating initial MLflow database tables"),
    ("mlflow", "Updating database tables"),
    ("optuna", "A new study created in memory"),
    ("ray.tune", "Wrote the latest version of all result files and experiment state"),
    # Ray's notice that a local ray.init turned token auth on (nothing to do: the token is in Ray's
    # session; docs/cluster.md says when RAY_AUTH_MODE=token is needed), and Serve's note that it joined
    # the Serve instance mlauto started a moment before
    ("ray", "Token authentication is enabled for this Ray cluster"),
    ("ray.serve", "Connecting to existing Serve app in namespace"),
)
# Printed lines (``print``, MLflow's ``eprint``, Ray's forwarded worker output) left off the console.
PRINTED: tuple[str, ...] = tuple(text for _, text in NOISE) + (
    "View detailed results here:", "To visualize your results with TensorBoard",
    "Successfully registered model", "Created version '", "already exists. Creating a new version of this model",
    "Throughput optimized Ray Serve enabled",
    # the raylet's note on worker start-up concurrency (Tune trials, Serve and the monitor start workers at
    # once on a 2-core machine), and the controller call that mlauto's own stop kills on purpose
    "PYTHON worker processes have been started on node", "Task ServeController.graceful_shutdown failed",
)
# Tracebacks Ray's workers print while Ray tears them down (a trial's actor killed under Python's garbage
# collector, a Ray Data thread interrupted at the end of a read): diverted whole, up to the exception line.
TEARDOWN = ("Exception ignored in: <function WeakSet", "Exception in thread pool-")
BOX = "╭╮╰╯├┤│─"
WORKER_PREFIX = re.compile(r"^\([\w.:-]+ pid=\d+(, ip=[\d.]+)?\)\s?")
SERVE_BANNER = re.compile(r"^\s+• ")  # the bullet list under Serve's "Throughput optimized" line
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


def is_printed_noise(line: str) -> bool:
    """Whether a printed line is noise: a :data:`PRINTED` text, a line of Tune's box, Serve's banner list,
    or a blank line (Tune prints them around its box; Ray forwards a worker's with its prefix)."""
    text = WORKER_PREFIX.sub("", ANSI.sub("", line.rstrip("\r\n")))
    if not text.strip():
        return True
    stripped = text.strip()
    return (stripped[0] in BOX or SERVE_BANNER.match(text) is not None
            or any(marker in text for marker in PRINTED))


class FilteredStream:
    """A text stream that drops noise lines (:func:`is_printed_noise`) from the console and hands them to
    ``divert`` (the log file) instead. Whole lines are judged; a partial line goes out on ``flush``, so a
    progress bar drawn with carriage returns still moves."""

    def __init__(self, stream: Any, divert: Callable[[str], None]) -> None:
        self.stream, self.divert, self.buffer = stream, divert, ""
        self.teardown: str | None = None  # the worker prefix of a teardown traceback being diverted

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self._emit(line + "\n")
        return len(text)

    def _teardown(self, text: str) -> bool:
        """Whether ``text`` belongs to a worker's teardown traceback (:data:`TEARDOWN`)."""
        match = WORKER_PREFIX.match(text)
        prefix = match.group(0) if match else ""
        body = text[len(prefix):]
        if self.teardown is None:
            if body.startswith(TEARDOWN):
                self.teardown = prefix
                return True
            return False
        if prefix != self.teardown:
            return False
        if not (body[:1].isspace() or body.startswith("Traceback")):
            self.teardown = None  # the exception line closes it
        return True

    def _emit(self, text: str) -> None:
        if self._teardown(text) or is_printed_noise(text):
            if text.strip():
                self.divert(text.rstrip("\n"))
        else:
            self.stream.write(text)

    def flush(self) -> None:
        if self.buffer:
            self.stream.write(self.buffer)
            self.buffer = ""
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...: the wrapped stream's
        return getattr(self.stream, name)


def _to_log_files(text: str) -> None:
    """A diverted line, written straight to the root's file handlers (never through a console handler)."""
    record = logging.LogRecord("console", logging.INFO, __file__, 0, "%s", (text,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def filter_streams() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` in :class:`FilteredStream` (once). For the command's own
    process: a Ray worker's output is filtered here too, as Ray prints it on the driver."""
    import atexit

    swapped: dict[int, FilteredStream] = {}
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if not isinstance(current, FilteredStream):
            wrapped = FilteredStream(current, _to_log_files)
            setattr(sys, name, wrapped)
            atexit.register(wrapped.flush)
            swapped[id(current)] = wrapped
    # Third-party loggers whose console handler was made before (Optuna's, when a config import loaded it)
    # still hold the bare stream: point them at the filtered one. The root's (Hydra's) is left as it is.
    for logger in list(logging.root.manager.loggerDict.values()):
        for handler in getattr(logger, "handlers", []):
            if _is_console(handler) and id(handler.stream) in swapped:
                handler.setStream(swapped[id(handler.stream)])


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


__all__ = ["NOISE", "PRINTED", "FilteredStream", "NoiseFilter", "filter_streams", "install", "is_printed_noise",
           "quiet_env"]
