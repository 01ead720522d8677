"""`make demo` end to end: the story runs on a fresh anvil and prints its summary, twice."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gpushares.devnode import PROJECT_ROOT

pytestmark = pytest.mark.integration


def run_demo() -> str:
    done = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "gpushares.demo"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_demo_tells_the_story_and_runs_twice():
    for _ in range(2):
        out = run_demo()
        assert "Lone Star H100 Shares (LSH1)" in out
        assert "8 GPUs registered, 8 active" in out
        assert "Alice (TEST::2)" in out and "3,855.60" in out
        assert "Bob (TEST::3)" in out and "6,426.00" in out
        assert "income distributed      : 10,281.60 mUSDC" in out
        assert "income claimed          : 10,281.60 mUSDC" in out
        assert "anvil stopped" in out
