"""The quiet console: third-party noise is filtered from console handlers and still reaches the log file."""

from __future__ import annotations

import logging

from mlauto import console

HISTORY = "You are trying to log an invalid value (ray/tune/history=[{'epoch': 1}]) via TensorBoardX"


def _record(name: str, msg: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_noise_filter_drops_only_known_noise_and_strips_escape_codes():
    f = console.NoiseFilter(strip_ansi=True)
    assert not f.filter(_record("ray.tune.logger.tensorboardx", HISTORY))
    assert not f.filter(_record("mlflow.sklearn", "Saving scikit-learn models in the pickle or cloudpickle format ..."))
    assert f.filter(_record("ray.tune", "some other warning"))
    assert f.filter(_record("mlauto.train", HISTORY))  # only the named source is filtered
    colored = _record("ray._private.worker", "dashboard at \x1b[1m\x1b[32mhttp://127.0.0.1:8265 \x1b[39m\x1b[22m")
    assert f.filter(colored) and colored.getMessage() == "dashboard at http://127.0.0.1:8265 "


def test_install_keeps_noise_in_the_log_file(tmp_path, monkeypatch):
    root = logging.getLogger()
    log_file = tmp_path / "mlauto.log"
    file_handler = logging.FileHandler(log_file)
    root.addHandler(file_handler)
    for key in console.quiet_env(False):
        monkeypatch.delenv(key, raising=False)
    ray_logger = logging.getLogger("ray")
    before = list(ray_logger.handlers)
    try:
        console.install(tty=False)
        import os

        assert os.environ["RAY_COLOR_PREFIX"] == "0" and os.environ["TQDM_DISABLE"] == "1"
        consoles = [h for h in ray_logger.handlers if console._is_console(h)]
        assert consoles and all(not h.filter(_record("ray.tune.logger.tensorboardx", HISTORY)) for h in consoles)
        assert file_handler in ray_logger.handlers
        logging.getLogger("ray.tune.logger.tensorboardx").warning(HISTORY)
        file_handler.flush()
        assert "ray/tune/history" in log_file.read_text()
    finally:
        root.removeHandler(file_handler)
        for h in list(ray_logger.handlers):
            if h not in before:
                ray_logger.removeHandler(h)
        for logger in (ray_logger, logging.getLogger("mlflow")):
            if file_handler in logger.handlers:
                logger.removeHandler(file_handler)
        file_handler.close()


# What Tune, MLflow, Ray Serve and a Ray worker print (not log) during a run, as a non-TTY console shows it.
PRINTED_NOISE = """\
╭───────────────────────────────────────────────────────────────╮
│ Configuration for experiment     quickstart-20261206-012159   │
├───────────────────────────────────────────────────────────────┤
│ Number of trials                 4                            │
╰───────────────────────────────────────────────────────────────╯

View detailed results here: /tmp/root/ray_results/quickstart-20261206-012159
To visualize your results with TensorBoard, run: `tensorboard --logdir /tmp/ray/x`
Successfully registered model 'mlauto-quickstart'.
Created version '1' of model 'mlauto-quickstart'.
(ServeController pid=12081) INFO 2026-12-06 01:22:45,058 serve 12081 -- Throughput optimized Ray Serve enabled with:
(ServeController pid=12081)   • Direct ingress enabled
(ServeController pid=12081) 
(_run_retrain pid=11228) Starting execution of Dataset dataset_0359_0. Full logs are in /tmp/ray/logs/ray-data
(_run_retrain pid=11228) │ Search algorithm                 SearchGenerator              │
(_run_retrain pid=11228) Registered model 'mlauto-quickstart' already exists. Creating a new version of this model...
(_run_retrain pid=11228, ip=10.0.0.2) [I 2026-12-06 01:23:02,749] A new study created in memory with name: optuna
(_trainable pid=28426) Exception ignored in: <function WeakSet.__init__.<locals>._remove at 0x7f77fd4de520>
(_trainable pid=28426) Traceback (most recent call last):
(_trainable pid=28426)   File "/usr/lib/python3.11/_weakrefset.py", line 39, in _remove
(_trainable pid=28426) SystemExit: 1
(ListFiles pid=29467) Exception in thread pool-0/completion-signaler:
(ListFiles pid=29467) Traceback (most recent call last):
(ListFiles pid=29467)     raise InterruptedError()
(ListFiles pid=29467) InterruptedError
(raylet) WARNING: 8 PYTHON worker processes have been started on node: 7a61f4 with address: 192.0.2.2, which is 4x
(raylet) Task ServeController.graceful_shutdown failed. There are infinite retries remaining, so the task will be
"""
KEPT = """\
[2026-12-06 01:22:53,417][mlauto.context][INFO] - == stage serve done in 9.5s
(_run_retrain pid=11228) quarantined 50 of 619 row(s) -> /tmp/q.parquet: duplicate row: 50
INFO 2026-12-06 01:22:53,417 serve 10077 -- Application 'mlauto' is ready at http://127.0.0.1:8000/.
(ServeController pid=1) ERROR something a user must see
(_run_retrain pid=5) Traceback (most recent call last):
(_run_retrain pid=5)   File "x.py", line 1, in <module>
(_run_retrain pid=5) ValueError: a real failure stays on the console
"""


def test_filtered_stream_sends_printed_noise_to_the_log_and_keeps_the_rest():
    import io

    out, diverted = io.StringIO(), []
    stream = console.FilteredStream(out, diverted.append)
    for line in (PRINTED_NOISE + KEPT).splitlines(keepends=True):  # print() writes the text, then "\n"
        stream.write(line.rstrip("\n"))
        stream.write("\n")
    stream.write("\r 50%|#####     |")  # a progress bar's partial line goes out on flush
    stream.flush()
    assert out.getvalue() == KEPT + "\r 50%|#####     |"
    assert diverted == [line for line in PRINTED_NOISE.splitlines() if line.strip()]  # into the log, blanks dropped
    assert any("Created version '1'" in line for line in diverted)
    assert stream.isatty() is False  # everything else is the wrapped stream's


def test_filter_streams_wraps_once_and_writes_diverted_lines_to_the_log_file(tmp_path, monkeypatch):
    import io
    import sys

    log_file = tmp_path / "mlauto.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    early = logging.getLogger("optuna.early")  # a library logger whose handler was made before the wrap
    early_handler = logging.StreamHandler(err)
    early.addHandler(early_handler)
    try:
        console.filter_streams()
        console.filter_streams()
        assert isinstance(sys.stdout, console.FilteredStream) and sys.stdout.stream is out
        print("Created version '3' of model 'm'.")
        print("a line the user reads")
        early.warning("A new study created in memory with name: x")
        sys.stdout.flush()
        handler.flush()
        assert isinstance(early_handler.stream, console.FilteredStream) and err.getvalue() == ""
    finally:
        early.removeHandler(early_handler)
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert out.getvalue() == "a line the user reads\n"
    assert "Created version '3' of model 'm'." in log_file.read_text()
