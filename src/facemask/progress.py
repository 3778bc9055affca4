"""Progress on stderr for the long steps. Callers turn it on where stderr is a terminal (``sys.stderr.isatty()``),
so pipes, logs and stdout stay clean; on, it draws even where rich would not (a forced run, a test)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from rich.console import Console


def stderr_console() -> Console:
    """The console progress draws on: stderr, drawn as a terminal whatever rich detects."""
    return Console(stderr=True, force_terminal=True)


def status(message: str, progress: bool) -> AbstractContextManager:
    """A transient spinner with ``message`` while the block runs; nothing when ``progress`` is off."""
    return stderr_console().status(message) if progress else nullcontext()
