"""The data sets a data root holds, one folder each (``../shared/data``'s layout), and where each comes from.

One owner of the set names: the data root (``data/root.py``), the download (``data/download.py``), the
manifests (``data/manifests/NAME.sha256``) and the hints in errors about a missing set all read them here.
Provenance in full: docs/data.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PublicSource:
    """A public repository archive at a fixed commit, and the folder in it that the set is made from."""

    url: str
    folder: str  # inside the archive's top folder


@dataclass(frozen=True)
class DataSet:
    name: str
    about: str
    needed_by: str
    #: where the project rebuilds the set itself (data/download.py converts it); None: from a mirror only
    source: PublicSource | None = None


#: The case study's public source: web photos of faces, partly with masks pasted on (sic: "experiements").
OBSERVATIONS = PublicSource(
    url="https://github.com/prajnasb/observations/archive/76bc82fa34f4f602a03bf6e2ee8666ff6c893edb.zip",
    folder="experiements/dest_folder",
)

SETS: dict[str, DataSet] = {
    s.name: s
    for s in (
        DataSet("mask28", "the 28x28 grayscale dataset, Train and Test", "every training run", OBSERVATIONS),
        DataSet(
            "train-photos",
            "Train's full-size photos",
            "data/synthetic and the detector framing (python train.py experiment=best)",
            OBSERVATIONS,
        ),
        DataSet("photos", "Test's full-size photos", "facemask bench and the detector checks", OBSERVATIONS),
        DataSet("realworld", "MFR2: 269 real photos, evaluation only", "every run's realworld scores"),
        DataSet("realmasks", "1,127 real faces in real photos", "data/real=realmasks (experiment=best)"),
        DataSet("realfaces", "~20k real face crops", "data/real=realfaces (experiment=best), the mask rates"),
    )
}

#: What ``python train.py experiment=best`` and its evaluation read: ``facemask data download`` with no set.
TRAINING_SETS = ("mask28", "train-photos", "realworld", "realmasks", "realfaces")

MANIFESTS = Path(__file__).parent / "manifests"


def manifest_path(name: str) -> Path:
    return MANIFESTS / f"{name}.sha256"


def set_of(path: str | Path) -> DataSet | None:
    """The set a path lies in, from its folder names (``.../realfaces/bare/val`` -> realfaces)."""
    return next((SETS[part] for part in Path(path).parts if part in SETS), None)


def fetch_hint(path: str | Path) -> str:
    """What the set a path lies in is, what needs it and how to get it; '' for a path in no known set."""
    found = set_of(path)
    if found is None:
        return ""
    return f" ({found.name}: {found.about}; needed by {found.needed_by}; get it with `facemask data download {found.name}`)"
