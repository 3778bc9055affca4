"""Running ``python train.py`` in a subprocess, as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_train(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` from the project root, with FACEMASK_DATA unset; output captured."""
    env = {key: value for key, value in os.environ.items() if key != "FACEMASK_DATA"}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_error_line(result: subprocess.CompletedProcess) -> str:
    """The one-line message a user sees for a bad input; asserts there was no traceback."""
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    return result.stderr.strip().splitlines()[-1]
