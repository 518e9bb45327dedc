"""examples/quickstart.ipynb, executed end to end in a real Jupyter kernel (nbclient) with tiny budgets.

The kernel is a separate process: it joins the test session's Ray cluster through ``cluster.address``
(the same way the e2e quickstart's command does), so the notebook pays no Ray start-up of its own and
leaves nothing behind when the kernel exits. Its parameters come from ``MLAUTO_NOTEBOOK_OVERRIDES`` and
``MLAUTO_NOTEBOOK_ROOT``, which the notebook's first cell reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, assert_all_rendered, free_port, rendered, shutdown_serve

pytestmark = pytest.mark.slow

NOTEBOOK = REPO_ROOT / "examples" / "quickstart.ipynb"


def _outputs(nb, source_start: str) -> list[dict]:
    """The outputs of the code cell whose source starts with ``source_start``."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start))
    return cell.get("outputs", [])


def test_quickstart_notebook_runs_end_to_end(ray_session, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from mlauto.monitor import stop_monitor

    root = tmp_path / "runs"
    root.mkdir()
    overrides = [f"cluster.address={ray_session['address']}", "cluster.namespace=notebook",
                 f"serve.port={free_port()}", "serve.app_name=notebook", "monitor.actor_name=notebook-monitor",
                 "models=fast", "tune.num_samples=2", "tune.sample_sizes.fractions=[]",
                 "monitor.retrain=false"]  # a retrain would outlive the notebook's endpoint.stop()
    monkeypatch.setenv("MLAUTO_NOTEBOOK_OVERRIDES", " ".join(overrides))
    monkeypatch.setenv("MLAUTO_NOTEBOOK_ROOT", str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    shutdown_serve()  # Serve's HTTP port applies only when it starts: the notebook's serve starts it
    try:
        NotebookClient(nb, timeout=400, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        nbformat.write(nb, tmp_path / "executed.ipynb")  # to read when it failed
        stop_monitor("notebook-monitor", "notebook")
        shutdown_serve()
    # the Pareto plot is drawn; the experiment report exists and renders
    assert any("image/png" in o.get("data", {}) for o in _outputs(nb, "import matplotlib"))
    report = next(o["text"].strip() for o in _outputs(nb, "print(result.report)") if o.get("name") == "stdout")
    assert Path(report).is_file() and report.startswith(str(root))
    # the drift timeline the notebook fetched from GET /report shows the shifted rows' drift, and renders
    page = root / "monitor_report.html"
    assert any("text/html" in o.get("data", {}) for o in _outputs(nb, "import html"))
    dom = rendered(str(page), tmp_path)
    assert_all_rendered(dom)
    assert [img["section"] for img in dom.images] == ["timeline"]
    assert int(dom.fact("windows tested")) >= 4 and int(dom.fact("drift windows")) >= 1
    assert dom.fact("last rolling accuracy")  # the feedback labels reached the monitor
