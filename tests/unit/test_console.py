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
