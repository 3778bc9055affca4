"""JSON-lines files for a camera that runs for months: one record a line, rolled over by size.

``detect --log`` writes a line a frame (about 0.3 KB: 800 MB a day at 30 FPS), so a file that only grows
would fill the bank PC's disk; rolled over at ``max_mb`` and keeping ``keep`` old files, it never takes more
than ``(keep + 1) * max_mb``. Lines are flushed as written, so ``tail -f`` and a crash lose nothing.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from pydantic import BaseModel

from facemask.errors import FacemaskError


def check_rotate_mb(max_mb: float | None) -> None:
    if max_mb is not None and max_mb <= 0:
        raise FacemaskError(f"--rotate-mb {max_mb}: a size in MB, more than 0")


class JsonLines:
    """Records (pydantic models or dicts) one a line in ``path``; past ``max_mb`` (None: never) the file rolls
    over: ``path`` -> ``path.1`` -> ... -> ``path.<keep>``, the oldest dropped. Thread-safe."""

    def __init__(self, path: Path, max_mb: float | None = 100.0, keep: int = 5) -> None:
        check_rotate_mb(max_mb)
        self.path, self.keep = Path(path), keep
        self.max_bytes = None if max_mb is None else int(max_mb * 2**20)
        self._lock = threading.Lock()
        self._file = self._open()

    def _open(self):
        self._size = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return open(self.path, "w", buffering=1)
        except OSError as err:
            raise FacemaskError(f"{self.path}: cannot write here ({err.strerror})") from err

    def write(self, record: BaseModel | dict) -> None:
        line = (record.model_dump_json() if isinstance(record, BaseModel) else json.dumps(record)) + "\n"
        size = len(line.encode())
        with self._lock:
            if self.max_bytes is not None and self._size and self._size + size > self.max_bytes:
                self._roll_over()
            self._file.write(line)
            self._size += size

    def _roll_over(self) -> None:
        self._file.close()
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.keep:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self._open()

    def close(self) -> None:
        with self._lock:
            self._file.close()
