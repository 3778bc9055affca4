"""``facemask data download [SET...] [--to DIR] [--from MIRROR]``: every data set, verified file for file.

A set comes from one of two places:
- its public source at a fixed commit, converted here (``sets.DataSet.source``: mask28, train-photos and photos
  from the case study's repository; mask28 through ``prepare``, which reproduces the team's files byte for byte);
- a mirror (``--from``: a URL or a folder holding ``NAME.zip``, made by ``facemask data pack`` from a data root)
  for every set, and the only place for the sets the team built with its own scripts (``../shared/README.md``).

Archives download into ``DIR/.download/`` and resume where a transfer broke off; a set is unpacked into a
temporary folder, checked against its manifest (``data/manifests/NAME.sha256``), and only then renamed to
``DIR/NAME``. A corrupt archive or a wrong checksum leaves nothing behind but a clear error.
"""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from facemask.data import manifest
from facemask.data.folder import CLASSES
from facemask.data.prepare import prepare
from facemask.data.sets import SETS, TRAINING_SETS, DataSet, PublicSource, manifest_path
from facemask.errors import FacemaskError

CHUNK = 1 << 16
DOWNLOADS = ".download"  # inside the data root: archives in transit (``NAME.part``) and unpacked sources


def fetch(url: str, path: Path, progress: bool = True, timeout: float = 60) -> None:
    """Stream ``url`` into ``path``, resuming a ``path.part`` left by a broken transfer (HTTP Range)."""
    part = path.with_name(path.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have and response.status == http.client.PARTIAL_CONTENT
            have = have if resumed else 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length else None
            received = _stream(response, part, "ab" if resumed else "wb", have, total, progress)
    except urllib.error.HTTPError as err:
        if err.code == http.client.REQUESTED_RANGE_NOT_SATISFIABLE and have:  # the part is the whole file
            os.replace(part, path)
            return
        raise FacemaskError(f"download failed: HTTP {err.code} {err.reason} from {url}") from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise FacemaskError(f"download failed from {url}: {reason}; run the same command to resume") from err
    if total is not None and received != total:
        raise FacemaskError(
            f"download interrupted from {url}: {received} of {total} bytes; run the same command to resume"
        )
    os.replace(part, path)


def _stream(response, part: Path, mode: str, have: int, total: int | None, progress: bool) -> int:
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with open(part, mode) as file, Progress(*columns, disable=not progress, transient=True) as bar:
        task = bar.add_task("download", total=total, completed=have)
        received = have
        while chunk := response.read(CHUNK):
            file.write(chunk)
            received += len(chunk)
            bar.advance(task, len(chunk))
    return received


def extract(archive: Path, into: Path, folder: str = "") -> Path:
    """Unpack the members under ``<top>/folder`` (all of it when ``folder`` is '') and return that folder.

    A corrupt archive is deleted, so that the next run downloads it afresh."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = zipped.namelist()
            top = names[0].split("/")[0] if names else ""
            root = f"{top}/{folder}".rstrip("/") + "/"
            members = [name for name in names if name.startswith(root)]
            if not members:
                raise FacemaskError(f"{archive.name}: no {root} in the archive")
            for name in members:
                zipped.extract(name, into)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as err:
        archive.unlink(missing_ok=True)
        raise FacemaskError(
            f"{archive.name}: corrupt archive ({err}); deleted: run the same command again"
        ) from err
    return into / root


def _copy_photos(split: str) -> Callable[[Path, Path], None]:
    """The source's ``split/with_mask`` and ``without_mask`` as ``WithMask``/``WithoutMask``, files as they are."""

    def convert(source: Path, dst: Path) -> None:
        for name in CLASSES:
            snake = "with_mask" if name == "WithMask" else "without_mask"
            shutil.copytree(source / split / snake, dst / name)

    return convert


def _prepare(source: Path, dst: Path) -> None:
    prepare(source, dst, progress=False)


#: How each set with a public source is made from the source's folder (``../shared/README.md``).
CONVERSIONS: dict[str, Callable[[Path, Path], None]] = {
    "mask28": _prepare,
    "train-photos": _copy_photos("train"),
    "photos": _copy_photos("test"),
}


def download(
    names: list[str] | None, to: str | Path, mirror: str | None = None, progress: bool = True
) -> list[str]:
    """Fetch each set (default: what ``experiment=best`` needs) into ``to``; returns one line per set."""
    to = Path(to)
    unknown = [name for name in names or [] if name not in SETS]
    if unknown:
        raise FacemaskError(
            f"unknown set {unknown[0]!r}; the sets are {', '.join(SETS)} (destination: --to DIR)"
        )
    lines = []
    for name in names or TRAINING_SETS:
        if (to / name).exists():
            lines.append(f"{name}: already at {to / name} (check it: facemask data verify {name})")
            continue
        staging = to / DOWNLOADS / f"{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            built = _build(SETS[name], to / DOWNLOADS, staging, mirror, progress)
            _verify(SETS[name], built, to / DOWNLOADS / f"{name}.zip")
            os.replace(built, to / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        lines.append(
            f"{name}: {to / name} ({len(manifest.read(manifest_path(name)))} files, checksums match)"
        )
    shutil.rmtree(to / DOWNLOADS, ignore_errors=True)  # everything arrived: no source or part is needed again
    return lines


def _build(data_set: DataSet, downloads: Path, staging: Path, mirror: str | None, progress: bool) -> Path:
    """The set unpacked (and converted) under ``staging``: from the mirror if one is given, else its source."""
    downloads.mkdir(parents=True, exist_ok=True)
    if mirror is not None:
        archive = _mirror_archive(mirror, data_set.name, downloads, progress)
        return extract(archive, staging)
    if data_set.source is None:
        raise FacemaskError(
            f"{data_set.name}: the team built it with its own scripts from several public sources "
            "(../shared/README.md); get it from a mirror: --from URL_OR_FOLDER holding "
            f"{data_set.name}.zip (`facemask data pack` on a machine that has it)"
        )
    source = _public_source(data_set.source, downloads, progress)
    built = staging / data_set.name
    CONVERSIONS[data_set.name](source, built)
    return built


def _mirror_archive(mirror: str, name: str, downloads: Path, progress: bool) -> Path:
    if "://" not in mirror:
        archive = Path(mirror) / f"{name}.zip"
        if not archive.is_file():
            raise FacemaskError(f"{archive}: not found (the mirror holds NAME.zip from `facemask data pack`)")
        return archive
    archive = downloads / f"{name}.zip"
    if not archive.exists():
        fetch(f"{mirror.rstrip('/')}/{name}.zip", archive, progress)
    return archive


def _public_source(source: PublicSource, downloads: Path, progress: bool) -> Path:
    """The source's archive downloaded once (shared by the sets made from it) and its folder unpacked."""
    archive = downloads / Path(source.url).name
    if not archive.exists():
        fetch(source.url, archive, progress)
    unpacked = downloads / archive.stem
    if not unpacked.is_dir():
        partial = downloads / f"{archive.stem}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.replace(extract(archive, partial, source.folder), unpacked)
        shutil.rmtree(partial)
    return unpacked


def _verify(data_set: DataSet, folder: Path, downloaded: Path) -> None:
    """Every file of the manifest, each with its checksum; a mirror's archive that fails is deleted."""
    problems = manifest.differences(folder, manifest.read(manifest_path(data_set.name)))
    if problems:
        downloaded.unlink(missing_ok=True)
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise FacemaskError(
            f"{data_set.name}: does not match its manifest: {'; '.join(problems[:3])}{more}; nothing was kept"
        )
