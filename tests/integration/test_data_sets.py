"""The manifests shipped in the package against ../shared/data, and the public-source conversion against them."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from facemask.data import manifest
from facemask.data.download import download
from facemask.data.sets import SETS, manifest_path
from tests.cli import run_facemask, run_train
from tests.conftest import SHARED_DATA, requires_shared
from tests.unit.test_download import SOURCE_TOP, source_at

pytestmark = [pytest.mark.integration, requires_shared]


def test_every_manifest_matches_the_shared_data_file_for_file() -> None:
    result = run_facemask("data", "verify", "--root", str(SHARED_DATA))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"{name}: matches its manifest" for name in SETS]
    assert len(manifest.read(manifest_path("realfaces"))) > 19_000


def test_a_changed_or_missing_file_is_reported(tmp_path: Path) -> None:
    shutil.copytree(SHARED_DATA / "realworld", tmp_path / "realworld")
    (tmp_path / "realworld" / "labels.csv").write_text("file,class\n")
    next((tmp_path / "realworld" / "photos" / "WithMask").iterdir()).unlink()
    result = run_facemask("data", "verify", "realworld", "mask28", "--root", str(tmp_path))
    assert result.returncode == 1
    assert "realworld: 2 problem(s)" in result.stdout and "checksum differs: labels.csv" in result.stdout
    assert "mask28: not found at" in result.stdout and "facemask data download mask28" in result.stdout


def test_the_public_source_converts_to_the_shared_sets_byte_for_byte(tmp_path, monkeypatch) -> None:
    """The case study's repository, rebuilt from the shared photos, through download's conversion."""
    archive = tmp_path / "source.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for split, photos in (("train", "train-photos"), ("test", "photos")):
            for cls, folder in (("WithMask", "with_mask"), ("WithoutMask", "without_mask")):
                for path in (SHARED_DATA / photos / cls).iterdir():
                    zipped.write(path, f"{SOURCE_TOP}/experiements/dest_folder/{split}/{folder}/{path.name}")
    source_at(monkeypatch, archive.as_uri())
    lines = download(["mask28", "train-photos", "photos"], tmp_path / "data", progress=False)
    assert all("checksums match" in line for line in lines), lines


@pytest.mark.slow
def test_a_data_root_of_any_name_serves_every_set(tmp_path: Path) -> None:
    """A fresh machine's layout: one data folder, not called shared, named by FACEMASK_DATA (or, as before,
    its mask28/): the plain run reports realworld and experiment=best runs to the end on every set."""
    root = tmp_path / "bank-data"
    root.symlink_to(SHARED_DATA, target_is_directory=True)
    caches = f"data.cache_dir={tmp_path / 'cache'}"  # keyed by the paths: this root's own, not the project's
    plain = run_train(
        "debug=limit",
        caches,
        f"hydra.run.dir={tmp_path / 'plain'}",
        env={"FACEMASK_DATA": str(root / "mask28")},
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert "realworld/acc" in json.loads((tmp_path / "plain" / "metrics.json").read_text())
    best = run_train(
        "experiment=best",
        "debug=limit",
        caches,
        f"hydra.run.dir={tmp_path / 'best'}",
        env={"FACEMASK_DATA": str(root)},
    )
    assert best.returncode == 0, best.stderr[-3000:]
    metrics = json.loads((tmp_path / "best" / "metrics.json").read_text())
    assert {
        "realworld/acc",
        "realworld_detected/acc",
        "val_masked/acc",
        "bare_val/mask_rate",
    } <= metrics.keys()
    (log,) = (tmp_path / "best").glob("*.log")  # debug.log: debug presets name the task
    text = log.read_text()
    assert f"dataset: {root}/mask28" in text and "skipped" not in text
    for folder in (
        "realmasks/photos/train",
        "realfaces/masked/train",
        "realfaces/bare/train",
        "realworld/photos",
    ):
        assert f"{root}/{folder}" in text, f"{folder}: every set from the one data root"
