"""A trained classifier behind one interface: a checkpoint (PyTorch) or an exported ONNX file (onnxruntime).

Both take face crops as the model's input spec makes them (``vision.spec``: uint8 (N, 28, 28) for the
dataset's 28 px gray) and return P(WithMask); both carry what the model was trained with: the operating
threshold, the crop margin and the input spec, so every app cuts faces the way the model saw them. The ONNX path never imports torch, so a deployment needs neither PyTorch nor Lightning.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Protocol

import numpy as np

from facemask.decision import is_mask
from facemask.errors import FacemaskError
from facemask.vision.crops import DEFAULT_MARGIN, FaceCropper
from facemask.vision.spec import InputSpec

#: ONNX graph names and metadata keys, shared by export and loading.
INPUT_NAME, OUTPUT_NAME = "images", "p_mask"
THRESHOLD_KEY, CLASSES_KEY, MARGIN_KEY, SPEC_KEY = "threshold", "classes", "margin", "input"
MACS_KEY = "macs_per_face"


class Classifier(Protocol):
    threshold: float
    classes: tuple[str, ...]
    margin: float  # the crop margin the model was trained with (vision.crops)
    spec: InputSpec  # the input size and channels the model was trained with (vision.spec)
    macs: int | None  # multiply-accumulates to score one face (None: an export from before it was recorded)

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """P(WithMask) (N,) float32 for uint8 face crops (N, *spec.face_shape)."""
        ...


class OnnxClassifier:
    """An exported model run by onnxruntime; threshold and class names come from its metadata."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # idle threads must not spin: in the detect loop they would steal the cores the face detector needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf kinds
            raise FacemaskError(f"{path}: not a readable ONNX model ({err})") from err
        metadata = self.session.get_modelmeta().custom_metadata_map
        names = (
            [node.name for node in self.session.get_inputs()],
            [node.name for node in self.session.get_outputs()],
        )
        if names != ([INPUT_NAME], [OUTPUT_NAME]) or THRESHOLD_KEY not in metadata:
            raise FacemaskError(f"{path}: not a model exported by 'facemask export' (inputs/outputs {names})")
        self.threshold = float(metadata[THRESHOLD_KEY])
        self.classes = tuple(json.loads(metadata[CLASSES_KEY]))
        # exports from before the margin was recorded were all cut with the default
        self.margin = float(metadata.get(MARGIN_KEY, DEFAULT_MARGIN))
        self.spec = InputSpec.recorded(json.loads(metadata.get(SPEC_KEY, "{}")))
        self.macs = int(metadata[MACS_KEY]) if MACS_KEY in metadata else None

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros(0, dtype=np.float32)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: self.spec.batch(crops)})[0]


class TorchClassifier:
    """A train.py checkpoint, run by PyTorch in eval mode."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import torch

        from facemask.data.folder import CLASSES
        from facemask.module import load_checkpoint

        if threads:
            torch.set_num_threads(threads)
        self.model = load_checkpoint(path)
        self.threshold = float(self.model.threshold)
        self.classes = CLASSES
        self.margin = self.model.margin
        self.spec = self.model.spec

    @property
    def macs(self) -> int:
        """Counted when asked (one traced forward pass), not at every load: only bench reads it."""
        return self.model.macs_per_face

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.predict_proba(torch.from_numpy(self.spec.batch(crops))).numpy()


def crop_margin(classifier: Classifier, override: float | None, model: str | Path) -> float:
    """The margin to cut faces with: the model's own, or ``override`` with a warning where it differs (the
    model then sees faces framed unlike its training)."""
    if override is None or override == classifier.margin:
        return classifier.margin
    print(
        f"warning: {model}: cutting faces with margin {override}, not the {classifier.margin} it was trained with",
        file=sys.stderr,
    )
    return override


def model_cropper(
    classifier: Classifier,
    model: str | Path,
    detector_width: int,
    min_score: float,
    margin: float | None = None,
) -> FaceCropper:
    """CenterFace and the cut the model was trained with: its margin (or ``margin``, with a warning) and spec."""
    from facemask.vision.faces import CenterFace

    detector = CenterFace(input_width=detector_width, score_threshold=min_score)
    return FaceCropper(detector, crop_margin(classifier, margin, model), classifier.spec)


def load_classifier(path: str | Path, threads: int | None = None) -> Classifier:
    """The classifier in ``path``: ``.onnx`` for onnxruntime, anything else a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FacemaskError(f"{path}: model file not found")
    kind = OnnxClassifier if path.suffix.lower() == ".onnx" else TorchClassifier
    return kind(path, threads)


#: Faces scored at once by ``scores``: whole folders in bounded memory.
BATCH = 256


def scores(classifier: Classifier, crops: np.ndarray) -> np.ndarray:
    """P(WithMask) of uint8 crops (N, *spec.face_shape), ``BATCH`` at a time (N may be 0)."""
    return np.concatenate(
        [classifier.predict_proba(crops[i : i + BATCH]) for i in range(0, len(crops), BATCH)] or [[]]
    )


def labels_for(classifier: Classifier, probs: np.ndarray) -> list[str]:
    """Class names at the classifier's operating threshold."""
    return [classifier.classes[int(is_mask(p, classifier.threshold))] for p in probs]
