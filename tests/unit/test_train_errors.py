"""``python train.py`` on bad input: one line naming the problem, exit code 1, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from facemask.errors import FacemaskError
from facemask.module import load_checkpoint
from tests.cli import last_error_line, run_train


def test_a_corrupt_image_is_named(tiny_dataset: Path, tmp_path: Path) -> None:
    broken = tiny_dataset / "Train" / "WithMask" / "broken.png"
    broken.write_bytes((tiny_dataset / "Train" / "WithMask" / "0.png").read_bytes()[:80])  # cut short
    result = run_train(f"data.root={tiny_dataset}", f"hydra.run.dir={tmp_path / 'run'}")
    assert last_error_line(result).startswith(f"error: {broken}: corrupt or truncated image")


def test_a_wrong_augment_override_says_how_to_pick_a_preset(tiny_dataset: Path, tmp_path: Path) -> None:
    result = run_train(f"data.root={tiny_dataset}", "data.augment=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert "pick a preset with data/augment=NAME" in last_error_line(result)


def test_an_unwritable_run_folder_stops_before_training(tiny_dataset: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run folder should go")
    result = run_train(
        f"data.root={tiny_dataset}",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"paths.output_dir={blocker / 'run'}",
    )
    assert "run folder is not writable" in last_error_line(result)


@pytest.mark.parametrize(
    ("content", "problem"), [(None, "checkpoint not found"), (b"junk", "not a facemask checkpoint")]
)
def test_a_bad_checkpoint_is_named(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "model.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FacemaskError, match=problem) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epoch=3", "Could not override 'trainer.max_epoch'"),
        ("model=resnet", "Could not find 'model/resnet'"),
    ],
)
def test_unknown_overrides_get_hydras_message(override: str, message: str) -> None:
    result = run_train(override)
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_that_fails_before_training_is_set_aside_and_says_so_once(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    broken = tiny_dataset / "Train" / "WithMask" / "broken.png"
    broken.write_bytes(b"not a png")
    outputs = tmp_path / "outputs"
    result = run_train(f"data.root={tiny_dataset}", f"paths.log_dir={outputs}", f"paths.data_root={tmp_path}")
    line = last_error_line(result)
    assert line.startswith(f"error: {broken}: ")
    assert (result.stdout + result.stderr).count(line.removeprefix("error: ")) == 1, "printed once, last"
    assert not list((outputs / "train" / "runs").glob("*")), "no run folder for a run that never trained"
    (failed,) = (outputs / "train" / "failed").iterdir()
    assert f"run failed: error: {broken}" in (failed / "train.log").read_text()
    assert not list(outputs.rglob("events.out.tfevents.*")), "nothing for TensorBoard to list"


def test_a_run_prints_nothing_a_user_cannot_act_on(tiny_dataset: Path, tmp_path: Path) -> None:
    result = run_train(
        f"data.root={tiny_dataset}",
        "trainer.max_epochs=1",
        f"paths.data_root={tmp_path}",  # no realworld or mask-rate sets: skipped
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stdout + result.stderr
    assert "litlogger" not in printed and "Tip:" not in printed and "already configured" not in printed
    assert "Total FLOPs: 0" not in printed and "Total FLOPs" in printed, "a real count"
