"""A set's manifest: the SHA-256 of every file it keeps, in ``sha256sum``'s format (``HASH  PATH`` per line).

Generated from ``../shared/data`` (``scripts/make_manifests.py``) and shipped in the package, so that a download
(or anyone's copy, ``facemask data verify``) is checked file for file against the team's data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from facemask.errors import DatasetError

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def set_files(folder: Path) -> list[Path]:
    """Every file a set keeps, sorted (hidden files such as .DS_Store are not part of a set)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def build(folder: Path) -> dict[str, str]:
    """Relative POSIX path -> SHA-256 of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): file_digest(p) for p in set_files(folder)}


def write(manifest: dict[str, str], path: Path) -> None:
    path.write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(manifest.items())))


def read(path: Path) -> dict[str, str]:
    manifest = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise DatasetError(f"{path}:{number}: not a sha256sum line")
        manifest[name] = digest
    return manifest


def differences(folder: Path, manifest: dict[str, str], progress: bool = False) -> list[str]:
    """One line per file that is missing, changed or not in the manifest; [] when ``folder`` matches."""
    from rich.progress import track

    present = {p.relative_to(folder).as_posix(): p for p in set_files(folder)}
    problems = [f"missing: {name}" for name in sorted(manifest.keys() - present.keys())]
    problems += [f"not in the manifest: {name}" for name in sorted(present.keys() - manifest.keys())]
    common = sorted(manifest.keys() & present.keys())
    for name in track(common, description=f"checking {folder.name}", disable=not progress, transient=True):
        if file_digest(present[name]) != manifest[name]:
            problems.append(f"checksum differs: {name}")
    return problems
