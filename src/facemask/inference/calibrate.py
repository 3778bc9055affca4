"""``facemask calibrate``: the operating threshold refitted on a site's own labelled faces.

A bank labels a few hundred faces from its entrance camera; the threshold that meets its target there is
written into a copy of the model, where predict, detect and serve read it (the checkpoint's ``threshold``
buffer, the ONNX file's metadata). Precision and recall come with Wilson 95% intervals, because a few hundred
faces pin a rate down only to a few points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facemask.decision import is_mask
from facemask.errors import FacemaskError
from facemask.evaluation.calibration import OTHER_METRIC, threshold_for
from facemask.inference.classifier import THRESHOLD_KEY, crop_margin, load_classifier
from facemask.vision.spec import DEFAULT_SPEC, InputSpec

Z95 = 1.96


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a rate: sound at rates near 1, where the normal interval overshoots."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Rate:
    """A rate with its 95% interval, counted over ``n`` faces of the ``total`` labelled."""

    name: str
    hits: int
    n: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.n if self.n else float("nan")

    def more_faces_for(self, half_width: float) -> int:
        """Labelled faces to add (in the same mix) for a 95% interval of ± ``half_width``."""
        p = self.value if self.n else 0.5
        needed = Z95**2 * max(p * (1 - p), 0.25 / max(self.n, 1)) / half_width**2
        return max(0, math.ceil(needed * self.total / max(self.n, 1)) - self.total)

    def __str__(self) -> str:
        low, high = wilson(self.hits, self.n)
        return f"{self.name} {self.value:.4f} [{low:.4f}, {high:.4f}] ({self.hits}/{self.n})"


def rates(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, Rate]:
    """Precision and recall of WithMask at ``threshold`` (WithMask where P(WithMask) > threshold)."""
    predicted, actual = is_mask(probs, threshold), labels == 1
    hits = int((predicted & actual).sum())
    return {
        "precision": Rate("precision", hits, int(predicted.sum()), len(labels)),
        "recall": Rate("recall", hits, int(actual.sum()), len(labels)),
    }


#: A threshold that moves further than this (on P(mask), 0..1) means the model does not fit the site.
MAX_SHIFT = 0.2


@dataclass(frozen=True)
class Calibration:
    before: float
    after: float
    metric: str
    target: float
    rates_before: dict[str, Rate]
    rates_after: dict[str, Rate]
    faces: int

    def lines(self) -> list[str]:
        if self.metric == "balanced":  # the target is on the lower of the two
            shown, goal = ("precision", "recall"), "balanced precision and recall"
            chosen = min(self.rates_after.values(), key=lambda rate: rate.value)
        else:
            shown, goal = (self.metric, OTHER_METRIC[self.metric]), f"{self.metric} >= {self.target}"
            chosen = self.rates_after[self.metric]
        lines = [f"{self.faces} labelled faces; target {goal}"]
        for label, threshold, scores in (
            ("before", self.before, self.rates_before),
            ("after ", self.after, self.rates_after),
        ):
            lines.append(f"{label} threshold {threshold:.4f}: {scores[shown[0]]}  {scores[shown[1]]}")
        if abs(self.after - self.before) > MAX_SHIFT:
            lines.append(
                f"warning: the threshold moved by {abs(self.after - self.before):.3f} (more than {MAX_SHIFT}): the "
                "model scores this site's faces far from how it scored its validation faces (camera, light, "
                "framing differ); look at the faces it gets wrong, and retrain with the site's faces "
                "(facemask mine, docs/research.md) rather than trust a far-moved threshold"
            )
        low, high = wilson(chosen.hits, chosen.n)
        if self.target is not None and low < self.target:
            lines.append(
                f"warning: the 95% interval of {self.metric} reaches down to {low:.4f}, below the target: "
                "label more faces before trusting it"
            )
        for half_width in (0.02, 0.01):
            lines.append(
                f"for {chosen.name} ± {half_width:.0%}: about {chosen.more_faces_for(half_width)} more labelled "
                f"faces (now ± {(high - low) / 2:.2%})"
            )
        return lines


def calibrate(
    probs: np.ndarray, labels: np.ndarray, before: float, metric: str, target: float | None
) -> Calibration:
    """The threshold meeting ``metric >= target`` on these faces (``balanced``: the lower of precision and
    recall highest), and the scores before and after."""
    if metric not in (*OTHER_METRIC, "balanced"):
        raise FacemaskError(f"--target {metric}=...: expected precision or recall (or balanced)")
    if len(set(labels.tolist())) < 2:
        raise FacemaskError("calibration needs labelled faces of both classes (WithMask and WithoutMask)")
    after = threshold_for(torch.from_numpy(probs), torch.from_numpy(labels), metric, target)
    return Calibration(
        before, after, metric, target, rates(probs, labels, before), rates(probs, labels, after), len(labels)
    )


def write_calibrated(model: str | Path, output: str | Path, threshold: float) -> Path:
    """A copy of ``model`` whose operating threshold is ``threshold``, where predict/detect/serve read it."""
    model, output = Path(model), Path(output)
    if model.suffix.lower() == ".onnx":
        import onnx

        graph = onnx.load(str(model))
        props = {prop.key: prop.value for prop in graph.metadata_props}
        props[THRESHOLD_KEY] = str(threshold)
        props["calibrated_from"] = props.get("calibrated_from", str(model))
        del graph.metadata_props[:]
        onnx.helper.set_model_props(graph, props)
        onnx.save(graph, str(output))
    else:
        checkpoint = torch.load(model, map_location="cpu", weights_only=True)
        checkpoint["state_dict"]["threshold"] = torch.tensor(threshold)
        torch.save(checkpoint, output)
    return output


def labelled_faces(
    folder: str | Path, detect: bool, boxes: str | Path | None, margin: float, spec: InputSpec = DEFAULT_SPEC
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 faces at the model's input spec and their labels: face images in class folders, or with
    ``detect`` photos cut by the face detector as deployment cuts them, with ``margin`` (class folders, or a
    boxes CSV)."""
    from facemask.data.folder import load_image_folder
    from facemask.data.photos import framed_faces
    from facemask.data.photos import labelled_faces as detected

    faces = (
        framed_faces(detected(folder, boxes), margin, spec)
        if detect or boxes
        else load_image_folder(folder, spec=spec)
    )
    return spec.faces(faces.images.numpy()), faces.labels.numpy()


def run_calibration(
    model: str | Path,
    folder: str | Path,
    target: str = "precision=0.98",
    detect: bool = False,
    boxes: str | Path | None = None,
    output: str | Path | None = None,
    margin: float | None = None,
) -> tuple[Calibration, Path]:
    """Score the site's faces with ``model``, refit its threshold for ``target``, write the calibrated copy."""
    metric, _, value = target.partition("=")
    try:
        goal = None if target == "balanced" else float(value)
    except ValueError:
        raise FacemaskError(
            f"--target {target!r}: expected METRIC=VALUE, e.g. precision=0.98, or balanced"
        ) from None
    classifier = load_classifier(model)
    faces, labels = labelled_faces(
        folder, detect, boxes, crop_margin(classifier, margin, model), classifier.spec
    )
    result = calibrate(classifier.predict_proba(faces), labels, classifier.threshold, metric, goal)
    model = Path(model)
    written = write_calibrated(
        model, output or model.with_name(f"{model.stem}-calibrated{model.suffix}"), result.after
    )
    return result, written
