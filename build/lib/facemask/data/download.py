"""``facemask data download [DST]``: the case study's public source, prepared into DST.

Fetches the ``prajnasb/observations`` repository archive, takes ``experiements/dest_folder/{train,test}``
(web photos of faces, partly with masks pasted on) and runs prepare on it, which keeps those splits:
1315 Train and 194 Test images. Everything happens in a temporary folder; DST appears only when all of
it worked.
"""

from __future__ import annotations

import http.client
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from facemask.data.prepare import Report, prepare
from facemask.errors import FacemaskError

SOURCE_URL = "https://github.com/prajnasb/observations/archive/refs/heads/master.zip"
FOLDER_IN_ARCHIVE = "experiements/dest_folder"  # sic: the repository's spelling
CHUNK = 1 << 16


def fetch(url: str, path: Path, progress: bool = True, timeout: float = 60) -> None:
    """Stream ``url`` into ``path``; one clear error for HTTP errors, lost connections and short bodies."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as file:
            total = int(response.headers.get("Content-Length") or 0) or None
            columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
            with Progress(*columns, disable=not progress, transient=True) as bar:
                task, received = bar.add_task("download", total=total), 0
                while chunk := response.read(CHUNK):
                    file.write(chunk)
                    received += len(chunk)
                    bar.advance(task, len(chunk))
        if total is not None and received != total:
            raise FacemaskError(
                f"download failed from {url}: connection closed after {received} of {total} bytes"
            )
    except urllib.error.HTTPError as err:
        raise FacemaskError(f"download failed: HTTP {err.code} {err.reason} from {url}") from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise FacemaskError(f"download failed from {url}: {reason}") from err


def extract_source(archive: Path, into: Path) -> Path:
    """Unpack only ``<top>/experiements/dest_folder/`` and return that folder."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [name for name in zipped.namelist() if f"/{FOLDER_IN_ARCHIVE}/" in f"/{name}"]
            if not members:
                raise FacemaskError(f"{archive.name}: no {FOLDER_IN_ARCHIVE}/ folder in the archive")
            for name in members:
                zipped.extract(name, into)
    except (zipfile.BadZipFile, EOFError) as err:
        raise FacemaskError(f"downloaded archive is truncated or corrupt ({err})") from err
    top = members[0].split(FOLDER_IN_ARCHIVE)[0]
    return into / top / FOLDER_IN_ARCHIVE


def download(dst: str | Path, url: str = SOURCE_URL, progress: bool = True) -> Report:
    """Download, extract and prepare into ``dst``; nothing is left behind when a step fails."""
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise FacemaskError(f"{dst}: already exists and is not empty; choose a new destination")
    work = Path(tempfile.mkdtemp(prefix="facemask-download-"))
    try:
        fetch(url, work / "source.zip", progress)
        return prepare(extract_source(work / "source.zip", work / "source"), dst, progress=progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
