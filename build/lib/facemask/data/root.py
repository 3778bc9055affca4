"""Where the dataset is: one search, used by the configs, the CLI, bench and the notebooks (torch-free: the
CLI parser reads its default)."""

from __future__ import annotations

import os
from pathlib import Path

from facemask.errors import DatasetError

#: Where the dataset is looked for when neither ``data.root`` nor FACEMASK_DATA says (relative to cwd).
DEFAULT_ROOTS = (Path("data/mask28"), Path("../shared/data/mask28"))


def find_split(root: Path, name: str) -> Path:
    """``root/Train`` or ``root/train`` (likewise Test): both spellings exist in the wild."""
    for candidate in (root / name, root / name.lower()):
        if candidate.is_dir():
            return candidate
    raise DatasetError(f"{root}: split folder {name}/ (or {name.lower()}/) is missing")


def find_root(root: str | Path | None) -> Path:
    """The dataset folder: ``root`` if given, else FACEMASK_DATA, else the first default that exists."""
    if root is None and os.environ.get("FACEMASK_DATA"):
        root = os.environ["FACEMASK_DATA"]
    candidates = [Path(root)] if root is not None else list(DEFAULT_ROOTS)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c.resolve()) for c in candidates)
    raise DatasetError(
        f"dataset not found (looked in: {looked}); point data.root=PATH or FACEMASK_DATA at a folder "
        "holding Train/ and Test/ (README, section Data)"
    )
