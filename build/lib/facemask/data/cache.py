"""Work done once and kept on disk: face detections and drawn images, keyed by everything they depend on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cached(
    cache_dir: str | Path | None, name: str, key: object, compute: Callable[[], np.ndarray]
) -> np.ndarray:
    """``compute()``, saved under ``cache_dir`` as ``{name}-{hash of key}.npy`` and loaded from there next time."""
    digest = hashlib.sha1(json.dumps(key, default=str).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{name}-{digest}.npy" if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path)
    result = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, result)
    return result
