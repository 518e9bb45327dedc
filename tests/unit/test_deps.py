"""Every package mlauto imports is declared in pyproject.toml, and every declared one is used (deptry)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_deptry_finds_no_issue():
    deptry = shutil.which("deptry") or str(Path(sys.executable).with_name("deptry"))
    if not Path(deptry).exists():
        pytest.fail("deptry is not installed: pip install -e '.[test]'")
    done = subprocess.run([deptry, "mlauto"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"NO_COLOR": "1", "PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 0, done.stdout + done.stderr
