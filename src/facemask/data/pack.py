"""``facemask data pack [SET...] --to DIR``: a mirror of a data root, one ``NAME.zip`` per set.

What ``facemask data download --from DIR_OR_URL`` reads: put DIR on a web server, a share or a USB stick. A set
is packed only if it matches its manifest, so a mirror never spreads a damaged copy.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from facemask.data import manifest
from facemask.data.sets import SETS, manifest_path
from facemask.errors import FacemaskError

EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same set packs to the same bytes


def pack(names: list[str] | None, root: str | Path, to: str | Path) -> list[Path]:
    """Zip each set of ``root`` (default: all) into ``to/NAME.zip``, files stored as they are."""
    root, to = Path(root), Path(to)
    archives = []
    for name in names or list(SETS):
        if name not in SETS:
            raise FacemaskError(f"unknown set {name!r}; the sets are {', '.join(SETS)}")
        folder = root / name
        if not folder.is_dir():
            raise FacemaskError(f"{folder}: set {name} not found in the data root")
        problems = manifest.differences(folder, manifest.read(manifest_path(name)))
        if problems:
            raise FacemaskError(f"{folder}: does not match its manifest ({problems[0]}); not packed")
        to.mkdir(parents=True, exist_ok=True)
        partial = to / f".{name}.zip.partial"
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as zipped:
            for path in manifest.set_files(folder):
                info = zipfile.ZipInfo(f"{name}/{path.relative_to(folder).as_posix()}", EPOCH)
                zipped.writestr(info, path.read_bytes())
        os.replace(partial, to / f"{name}.zip")
        archives.append(to / f"{name}.zip")
    return archives
