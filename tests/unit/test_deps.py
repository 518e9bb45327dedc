"""Every package mlauto imports is declared in pyproject.toml, and every declared one is used (deptry);
no two declared distributions install the same module."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def test_deptry_finds_no_issue():
    deptry = shutil.which("deptry") or str(Path(sys.executable).with_name("deptry"))
    if not Path(deptry).exists():
        pytest.fail("deptry is not installed: pip install -e '.[test]'")
    done = subprocess.run([deptry, "mlauto"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"NO_COLOR": "1", "PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_extra_brings_xgboost_beside_xgboost_cpu():
    """``xgboost`` and ``xgboost-cpu`` both install the module ``xgboost``: in one environment the second
    overwrites the first's files. The core has xgboost-cpu, so neither it nor any extra may ask for
    ``xgboost``, directly or through FLAML's ``automl`` extra (which requires it)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    reqs = {group: [Requirement(r) for r in rs] for group, rs in groups.items()}
    assert any(r.name == "xgboost-cpu" for r in reqs["core"])
    clashes = [f"{group}: {r}" for group, rs in reqs.items() for r in rs
               if r.name == "xgboost" or (r.name.lower() == "flaml" and "automl" in r.extras)]
    assert not clashes, clashes
