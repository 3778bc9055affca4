"""Where the data is: one data root holding every set (``mask28/``, ``train-photos/``, ``realworld/`` ...: see
``data/sets.py``), found once and used by the configs (``${data_root:}``), the CLI, bench and the notebooks
(torch-free: the CLI parser reads its default)."""

from __future__ import annotations

import os
from pathlib import Path

from facemask.data.sets import fetch_hint
from facemask.errors import DatasetError

#: Where the data root is looked for when neither ``paths.data_root`` nor FACEMASK_DATA says (relative to cwd):
#: ``data/`` (where ``facemask data download`` puts the sets), then the team's ``../shared/data``.
DEFAULT_DATA_ROOTS = (Path("data"), Path("../shared/data"))
DATASET = "mask28"  # the dataset's folder in a data root


def is_dataset(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in ("Train", "train"))


def find_data_root(root: str | Path | None = None) -> Path:
    """``root`` if given, else FACEMASK_DATA, else the first default that holds the dataset (else ``data/``,
    where downloads go). An older FACEMASK_DATA that names the dataset itself means its parent."""
    explicit = root if root not in (None, "") else os.environ.get("FACEMASK_DATA")
    if explicit:
        path = Path(explicit)
        return path.parent if is_dataset(path) else path
    return next((c for c in DEFAULT_DATA_ROOTS if (c / DATASET).is_dir()), DEFAULT_DATA_ROOTS[0])


def dataset_of(data_root: str | Path) -> Path:
    """The dataset in a data root: its ``mask28/``, or FACEMASK_DATA itself where that names a dataset in this
    root (the older spelling: FACEMASK_DATA=/path/to/my-dataset)."""
    env = os.environ.get("FACEMASK_DATA")
    if env and is_dataset(Path(env)) and Path(env).parent == Path(data_root):
        return Path(env)
    return Path(data_root) / DATASET


def find_root(root: str | Path | None = None) -> Path:
    """The dataset folder: ``root`` if given (the dataset, or a data root holding ``mask28/``), else the
    dataset of the data root (``find_data_root``)."""
    path = Path(root) if root not in (None, "") else dataset_of(find_data_root())
    if not is_dataset(path) and is_dataset(path / DATASET):
        path = path / DATASET
    if not path.is_dir():
        raise DatasetError(
            f"dataset not found at {path.resolve()}: get it with `facemask data download mask28`, or point "
            "FACEMASK_DATA at the folder holding every set (or data.root=PATH at the dataset; README, Data)"
        )
    return path


def find_split(root: Path, name: str) -> Path:
    """``root/Train`` or ``root/train`` (likewise Test): both spellings exist in the wild."""
    for candidate in (root / name, root / name.lower()):
        if candidate.is_dir():
            return candidate
    raise DatasetError(f"{root}: split folder {name}/ (or {name.lower()}/) is missing")


def missing(path: str | Path, what: str) -> DatasetError:
    """The one error for a set's folder that is not there: what needed it, and how to get it."""
    return DatasetError(f"{path}: {what} not found{fetch_hint(path)}")
