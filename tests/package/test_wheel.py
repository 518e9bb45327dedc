"""mlauto as a user installs it: the wheel, built from this checkout and installed (not editable) into a fresh
venv outside the repo, runs the quickstart through its console script and ``mlauto.fit`` from Python.

Own pytest process (marker ``package``, see .ci/run): it builds a wheel and starts two local Rays.
The venv sees the test venv's dependencies through a ``.pth`` line but not its editable mlauto
(``tests.helpers.venv_without_mlauto``), so only the wheel can answer ``import mlauto``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, clean_env, venv_without_mlauto

pytestmark = pytest.mark.package

TINY = ["tune.num_samples=2", "models=fast", "tune.sample_sizes.fractions=[]"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python of the fresh venv, a work folder outside the checkout) with the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources it builds.
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(REPO_ROOT / "mlauto", source / "mlauto", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(work / "dist"), str(source)], check=True, cwd=work, env=clean_env())
    (wheel,) = (work / "dist").glob("mlauto-*.whl")
    python = venv_without_mlauto(work / "venv")
    # pip itself comes from the dependencies' folder; it installs into the running interpreter's venv.
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, cwd=work, env=clean_env())
    where = subprocess.run([python, "-c", "import mlauto; print(mlauto.__file__)"], cwd=work, env=clean_env(),
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(work / "venv"), where
    return python, work


def _ray_processes(temp_dir: str) -> list[str]:
    """Command lines of live processes of the Ray whose session lives under ``temp_dir``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path("/proc", pid, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if temp_dir in cmdline:
            found.append(f"{pid}: {cmdline[:160]}")
    return found


def _run(args: list[str], work: Path, name: str) -> subprocess.CompletedProcess:
    """Run ``args`` in ``work`` with Ray's session files under a short folder of its own, then check that
    no process of that Ray outlives the command (the launcher and ``fit`` stop what they start)."""
    ray_tmp = tempfile.mkdtemp(prefix=f"rw{name}", dir="/tmp")  # short: Ray's socket paths have a limit
    try:
        out = subprocess.run(args, cwd=work, env=clean_env(RAY_TMPDIR=ray_tmp), capture_output=True, text=True,
                             timeout=480)
        assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
        assert list(Path(ray_tmp).glob("ray/session_*")), "Ray did not put its session under RAY_TMPDIR"
        assert not _ray_processes(ray_tmp), _ray_processes(ray_tmp)
        return out
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_console_script_runs_the_quickstart(installed):
    python, work = installed
    root = work / "runs"
    _run([str(python.parent / "mlauto"), "experiment=quickstart", "serve.blocking=false", f"root={root}",
          f"hydra.run.dir={root / 'out'}", "replay.enabled=false", "stages=[ingest,prepare,tune]", *TINY],
         work, "cli")
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["model_version"] == "1"
    assert os.path.exists(summary["report"])


def test_fit_from_the_installed_package(installed):
    python, work = installed
    script = textwrap.dedent(f"""
        import json, mlauto
        from sklearn.datasets import load_breast_cancer
        frame = load_breast_cancer(as_frame=True).frame.rename(columns={{"target": "label"}})
        result = mlauto.fit(frame, target="label", root={str(work / "fit")!r}, overrides={TINY + ["name=wheel"]!r})
        accuracy = float((result.model.predict(frame.drop(columns="label")) == frame["label"]).mean())
        print(json.dumps({{"file": mlauto.__file__, "version": result.version, "rows": len(result.leaderboard),
                          "accuracy": accuracy}}))
    """)
    out = _run([str(python), "-c", script], work, "fit")
    # Ray forwards its workers' output (LightGBM's warnings) to this stdout, sometimes after the script's line
    got = json.loads(next(line for line in reversed(out.stdout.splitlines()) if line.startswith('{"file"')))
    assert Path(got["file"]).is_relative_to(work / "venv")
    assert got["version"] == "1" and got["rows"] == 2 and got["accuracy"] > 0.9
