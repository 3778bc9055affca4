"""``facemask calibrate``: the threshold refitted on labelled faces, intervals, and the calibrated copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facemask.cli import main
from facemask.errors import FacemaskError
from facemask.inference.calibrate import MAX_SHIFT, calibrate, rates, wilson
from facemask.inference.classifier import load_classifier
from facemask.inference.export import export_onnx
from tests.synthetic import make_image_folder, tiny_checkpoint


def test_wilson_interval_matches_the_textbook() -> None:
    low, high = wilson(8, 10)  # Wilson 1927 / Newcombe 1998: 0.490 to 0.943
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson(50, 50)[1] == 1.0 and wilson(50, 50)[0] == pytest.approx(0.9287, abs=1e-4)


def test_calibration_meets_the_target_on_the_faces_it_saw() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    probs = np.clip(labels * 0.3 + rng.normal(0.4, 0.2, 400), 0, 1).astype(np.float32)
    result = calibrate(probs, labels, 0.5, "precision", 0.95)
    after = rates(probs, labels, result.after)
    assert after["precision"].value >= 0.95 and result.rates_after == after
    assert result.rates_before["precision"].value < 0.95, "the old threshold missed it"
    more = [int(line.split("about ")[1].split()[0]) for line in result.lines() if "more labelled" in line]
    assert more[1] > more[0] > 0, "a tighter interval needs more faces"
    balanced = calibrate(probs, labels, 0.5, "balanced", None)
    scores = rates(probs, labels, balanced.after)
    lower = min(scores["precision"].value, scores["recall"].value)
    assert lower > min(after["precision"].value, after["recall"].value), "the weaker of the two is higher"
    assert "target balanced precision and recall" in balanced.lines()[0]
    assert not any(line.startswith("warning: the threshold moved") for line in balanced.lines()), (
        "0.50 -> 0.53"
    )
    far = calibrate(probs * 0.4, labels, 0.5, "balanced", None)  # a site the model scores far lower: 0.21
    assert far.before - far.after > MAX_SHIFT
    warning = next(line for line in far.lines() if line.startswith("warning: the threshold moved"))
    assert f"moved by {far.before - far.after:.3f} (more than {MAX_SHIFT})" in warning
    with pytest.raises(FacemaskError, match="both classes"):
        calibrate(probs, np.ones_like(labels), 0.5, "precision", 0.95)
    with pytest.raises(FacemaskError, match="expected precision or recall"):
        calibrate(probs, labels, 0.5, "accuracy", 0.95)


@pytest.mark.parametrize("kind", ["ckpt", "onnx"])
def test_calibrate_writes_a_copy_that_predict_reads(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    checkpoint = tiny_checkpoint(tmp_path)
    model = checkpoint if kind == "ckpt" else export_onnx(checkpoint, tmp_path / "tiny.onnx")
    site = make_image_folder(tmp_path / "site", per_class=30, seed=5)
    assert main(["calibrate", str(model), str(site), "--target", "recall=0.99"]) == 0
    out = capsys.readouterr().out
    written = model.with_name(f"tiny-calibrated{model.suffix}")
    assert f"wrote {written}" in out and "60 labelled faces; target recall >= 0.99" in out
    calibrated, original = load_classifier(written), load_classifier(model)
    threshold = float(out.split("after  threshold ")[1].split(":")[0])
    assert calibrated.threshold == pytest.approx(threshold, abs=1e-4)
    faces, labels = load_faces(site)
    probs = calibrated.predict_proba(faces)
    np.testing.assert_allclose(probs, original.predict_proba(faces), atol=1e-6)
    assert (probs[labels == 1] > calibrated.threshold).mean() >= 0.99, "recall met on these faces"
    assert main(["calibrate", str(model), str(site), "--target", "precision"]) == 1
    assert "expected METRIC=VALUE" in capsys.readouterr().err


def load_faces(site: Path) -> tuple[np.ndarray, np.ndarray]:
    from facemask.data.folder import load_image_folder

    faces = load_image_folder(site)
    return faces.images[:, 0].numpy(), faces.labels.numpy()
