"""Running ``python train.py`` in a subprocess, as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_train(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` from the project root, with FACEMASK_DATA unset (or set by ``env``)."""
    env = {key: value for key, value in os.environ.items() if key != "FACEMASK_DATA"} | (env or {})
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


#: Runs facemask's CLI with ``import torch`` failing: the ONNX path must not need PyTorch.
WITHOUT_TORCH = (
    "import sys; sys.modules['torch'] = None; from facemask.cli import main; sys.exit(main(sys.argv[1:]))"
)


def run_facemask(
    *args: str, without_torch: bool = False, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``facemask ARGS`` as a user runs it; output captured."""
    entry = ["-c", WITHOUT_TORCH] if without_torch else ["-m", "facemask.cli"]
    return subprocess.run(
        [sys.executable, *entry, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
