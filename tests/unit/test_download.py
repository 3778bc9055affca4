"""``facemask data download / pack``: archives the tests build, served on loopback (no network)."""

from __future__ import annotations

import dataclasses
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from facemask.data import download as download_module
from facemask.data import manifest, sets
from facemask.data.download import download
from facemask.data.pack import pack
from facemask.data.prepare import prepare
from facemask.errors import FacemaskError
from tests.unit.test_prepare import photo

SOURCE_TOP = "observations-0123abc"


def jpeg(with_mask: bool, seed: int) -> bytes:
    buffer = io.BytesIO()
    photo(with_mask, seed).save(buffer, "JPEG")
    return buffer.getvalue()


def source_archive(per_class: int = 3) -> bytes:
    """A zip shaped like GitHub's archive of prajnasb/observations at a commit."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{SOURCE_TOP}/README.md", "the case study")
        for split, count in (("train", per_class), ("test", 1)):
            for folder, with_mask in (("with_mask", True), ("without_mask", False)):
                for i in range(count):
                    name = f"{SOURCE_TOP}/experiements/dest_folder/{split}/{folder}/{i}.jpg"
                    archive.writestr(name, jpeg(with_mask, i + 10 * (split == "test")))
    return buffer.getvalue()


class Route:
    """What the server answers for a path: the body, honouring Range, cut after ``cut`` bytes once."""

    def __init__(self, body: bytes, status: int = 200, cut: int | None = None) -> None:
        self.body, self.status, self.cut = body, status, cut
        self.ranges: list[str] = []


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, Route]]]:
    routes: dict[str, Route] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path)
            if route is None or route.status != 200:
                self.send_error(route.status if route else 404)
                return
            start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers["Range"] else 0
            route.ranges.append(self.headers["Range"] or "")
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(route.body) - start))
            self.end_headers()
            body = route.body[start:]
            if route.cut is not None:  # a broken connection: part of the body, then the socket closes
                body, route.cut = body[: route.cut], None
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()


@pytest.fixture
def manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The package's manifests replaced by the tests' own."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    monkeypatch.setattr(sets, "MANIFESTS", folder)
    return folder


def source_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """The case study's sets fetched from ``url`` instead of GitHub."""
    source = dataclasses.replace(sets.OBSERVATIONS, url=url)
    patched = {n: dataclasses.replace(s, source=source) if s.source else s for n, s in sets.SETS.items()}
    monkeypatch.setattr(download_module, "SETS", patched)


def expected_sets(tmp_path: Path, manifests: Path) -> None:
    """Manifests of what the conversions must give: the photos as they are, mask28 as prepare makes it."""
    with zipfile.ZipFile(io.BytesIO(source_archive())) as archive:
        archive.extractall(tmp_path / "expected")
    source = tmp_path / "expected" / SOURCE_TOP / "experiements" / "dest_folder"
    prepare(source, tmp_path / "expected" / "mask28", progress=False)
    manifest.write(manifest.build(tmp_path / "expected" / "mask28"), manifests / "mask28.sha256")
    for name, split in (("train-photos", "train"), ("photos", "test")):
        files = {
            f"{cls}/{p.name}": manifest.file_digest(p)
            for cls, folder in (("WithMask", "with_mask"), ("WithoutMask", "without_mask"))
            for p in (source / split / folder).iterdir()
        }
        manifest.write(files, manifests / f"{name}.sha256")


def test_public_source_is_fetched_once_converted_and_checked(
    tmp_path, server, manifests, monkeypatch
) -> None:
    url, routes = server
    routes["/source.zip"] = Route(source_archive())
    source_at(monkeypatch, f"{url}/source.zip")
    expected_sets(tmp_path, manifests)
    lines = download(["mask28", "train-photos", "photos"], tmp_path / "data", progress=False)
    assert [line.split(":")[0] for line in lines] == ["mask28", "train-photos", "photos"]
    assert all("checksums match" in line for line in lines)
    assert len(routes["/source.zip"].ranges) == 1, "one archive serves the three sets"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["mask28", "photos", "train-photos"]
    assert (tmp_path / "data" / "train-photos" / "WithMask" / "0.jpg").is_file()
    again = download(["mask28"], tmp_path / "data", progress=False)
    assert "already at" in again[0]


def test_an_interrupted_transfer_resumes_where_it_stopped(tmp_path, server, manifests, monkeypatch) -> None:
    url, routes = server
    body = source_archive()
    routes["/source.zip"] = Route(body, cut=len(body) // 2)
    source_at(monkeypatch, f"{url}/source.zip")
    expected_sets(tmp_path, manifests)
    with pytest.raises(FacemaskError, match=r"interrupted .* run the same command to resume"):
        download(["photos"], tmp_path / "data", progress=False)
    part = tmp_path / "data" / download_module.DOWNLOADS / "source.zip.part"
    assert part.stat().st_size == len(body) // 2
    assert not (tmp_path / "data" / "photos").exists()
    download(["photos"], tmp_path / "data", progress=False)
    assert routes["/source.zip"].ranges == ["", f"bytes={len(body) // 2}-"]
    assert len(list((tmp_path / "data" / "photos" / "WithMask").iterdir())) == 1
    assert not (tmp_path / "data" / download_module.DOWNLOADS).exists(), "nothing left in transit"


def mirror_of(tmp_path: Path, manifests: Path) -> Path:
    """A data root with one small set, its manifest, and its mirror made by pack."""
    root = tmp_path / "root"
    for i in range(3):
        (root / "realfaces" / "bare" / "val").mkdir(parents=True, exist_ok=True)
        (root / "realfaces" / "bare" / "val" / f"{i}.jpg").write_bytes(jpeg(False, i))
    manifest.write(manifest.build(root / "realfaces"), manifests / "realfaces.sha256")
    (archive,) = pack(["realfaces"], root, tmp_path / "mirror")
    return archive


def test_pack_and_download_from_a_mirror_folder_or_url(tmp_path, server, manifests) -> None:
    archive = mirror_of(tmp_path, manifests)
    first = archive.read_bytes()
    pack(["realfaces"], tmp_path / "root", tmp_path / "mirror")
    assert archive.read_bytes() == first, "the same set packs to the same bytes"
    download(["realfaces"], tmp_path / "a", mirror=str(tmp_path / "mirror"), progress=False)
    url, routes = server
    routes["/v1/realfaces.zip"] = Route(first)
    download(["realfaces"], tmp_path / "b", mirror=f"{url}/v1/", progress=False)
    for copy in ("a", "b"):
        assert manifest.build(tmp_path / copy / "realfaces") == manifest.build(
            tmp_path / "root" / "realfaces"
        )


def test_a_corrupt_archive_is_deleted_and_nothing_is_kept(tmp_path, server, manifests) -> None:
    archive = mirror_of(tmp_path, manifests)
    url, routes = server
    routes["/realfaces.zip"] = Route(archive.read_bytes()[:-300])
    with pytest.raises(FacemaskError, match=r"realfaces.zip: corrupt archive .* run the same command again"):
        download(["realfaces"], tmp_path / "data", mirror=url, progress=False)
    assert not (tmp_path / "data" / "realfaces").exists()
    assert not list((tmp_path / "data" / download_module.DOWNLOADS).glob("*.zip*"))


def test_a_wrong_checksum_keeps_nothing(tmp_path, server, manifests) -> None:
    archive = mirror_of(tmp_path, manifests)
    (tmp_path / "root" / "realfaces" / "bare" / "val" / "1.jpg").write_bytes(jpeg(True, 9))
    with pytest.raises(
        FacemaskError, match=r"does not match its manifest .*checksum differs: bare/val/1.jpg"
    ):
        pack(["realfaces"], tmp_path / "root", tmp_path / "mirror2")
    with zipfile.ZipFile(archive, "a") as zipped:  # a mirror that gained a file and changed one
        zipped.writestr("realfaces/bare/val/extra.jpg", b"x")
    url, routes = server
    routes["/realfaces.zip"] = Route(archive.read_bytes())
    with pytest.raises(FacemaskError, match="realfaces: does not match its manifest: not in the manifest: "):
        download(["realfaces"], tmp_path / "data", mirror=url, progress=False)
    assert not (tmp_path / "data" / "realfaces").exists()
    assert not (tmp_path / "data" / download_module.DOWNLOADS / "realfaces.zip").exists()


def test_clear_errors_for_unknown_sets_sets_without_a_source_and_http_errors(tmp_path, server) -> None:
    with pytest.raises(FacemaskError, match="unknown set 'data/mask28'; the sets are mask28, "):
        download(["data/mask28"], tmp_path, progress=False)
    with pytest.raises(FacemaskError, match=r"realfaces: the team built it .* --from URL_OR_FOLDER"):
        download(["realfaces"], tmp_path, progress=False)
    url, routes = server
    routes["/realmasks.zip"] = Route(b"", status=503)
    with pytest.raises(FacemaskError, match="download failed: HTTP 503"):
        download(["realmasks"], tmp_path, mirror=url, progress=False)
    with pytest.raises(FacemaskError, match=r"mirror/realmasks.zip: not found"):
        download(["realmasks"], tmp_path, mirror=str(tmp_path / "mirror"), progress=False)
