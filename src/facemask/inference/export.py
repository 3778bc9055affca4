"""``facemask export``: a checkpoint as a self-contained ONNX file, checked against PyTorch.

The graph takes faces at the model's input spec, scaled: float32 (N, channels, size, size) in [0, 1] (the
dataset's: (N, 1, 28, 28), PIL's ``convert("L")``, Lanczos resize, divided by 255). Normalisation, flip
test-time augmentation and the softmax are folded in; the output is P(WithMask) (N,). The operating threshold,
the class names, the crop margin and the input spec travel in the model's metadata.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from facemask.data.folder import CLASSES
from facemask.decision import is_mask
from facemask.inference.classifier import (
    CLASSES_KEY,
    INPUT_NAME,
    MACS_KEY,
    MARGIN_KEY,
    OUTPUT_NAME,
    SPEC_KEY,
    THRESHOLD_KEY,
    OnnxClassifier,
    TorchClassifier,
)
from facemask.module import MaskClassifier, load_checkpoint
from facemask.vision.spec import InputSpec


def preprocessing(spec: InputSpec) -> str:
    """The metadata's description of the input, for whoever runs the file without this package."""
    mode = "convert('L')" if spec.channels == 1 else "convert('RGB'), channels R, G, B"
    return (
        f"input: float32 (N, {spec.channels}, {spec.size}, {spec.size}) in [0, 1] = PIL {mode}, Lanczos resize "
        f"to {spec.size}x{spec.size}, / 255; output: P(WithMask) (N,); WithMask where p > threshold"
    )


class MaskProbability(nn.Module):
    """The exported graph: the classifier's eval-mode forward and softmax, P(WithMask) only."""

    def __init__(self, model: MaskClassifier) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).softmax(dim=-1)[:, 1]


def export_onnx(checkpoint: str | Path, output: str | Path) -> Path:
    """Write ``checkpoint`` as ONNX to ``output`` with a dynamic batch size and the metadata."""
    model = load_checkpoint(checkpoint)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(2, *model.spec.tensor_shape)
    logging.getLogger("torch.onnx").setLevel(logging.WARNING)
    program = torch.onnx.export(
        MaskProbability(model).eval(),
        (example,),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    program.save(str(output))
    graph = onnx.load(str(output))
    metadata = {
        THRESHOLD_KEY: str(float(model.threshold)),
        CLASSES_KEY: json.dumps(list(CLASSES)),
        MARGIN_KEY: str(model.margin),
        SPEC_KEY: json.dumps(model.spec.record()),
        MACS_KEY: str(model.macs_per_face),
        "preprocessing": preprocessing(model.spec),
        "source": str(checkpoint),
    }
    onnx.helper.set_model_props(graph, metadata)
    onnx.save(graph, str(output))
    return output


@dataclass(frozen=True)
class Parity:
    images: int
    max_abs_diff: float
    same_labels: bool

    def __str__(self) -> str:
        verdict = "identical labels" if self.same_labels else "LABELS DIFFER"
        return f"parity on {self.images} images: max |p_onnx - p_torch| = {self.max_abs_diff:.2e}, {verdict}"


def stand_in_crops(spec: InputSpec, count: int = 256, seed: int = 0) -> np.ndarray:
    """Faces for the parity check where no dataset is at hand: random 7x7 patterns blown up to the input
    size (smooth shapes, as faces are), from black to white."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, (count, 7, 7, *spec.face_shape[2:]), dtype=np.uint8)
    scale = -(-spec.size // 7)
    return patterns.repeat(scale, axis=1).repeat(scale, axis=2)[:, : spec.size, : spec.size].copy()


def check_parity(checkpoint: str | Path, onnx_path: str | Path, crops: np.ndarray) -> Parity:
    """Probabilities and labels of the ONNX file against the checkpoint on the same crops."""
    reference, exported = TorchClassifier(checkpoint), OnnxClassifier(onnx_path)
    p_torch, p_onnx = reference.predict_proba(crops), exported.predict_proba(crops)
    same = bool(np.array_equal(is_mask(p_torch, reference.threshold), is_mask(p_onnx, exported.threshold)))
    return Parity(len(crops), float(np.abs(p_torch - p_onnx).max(initial=0.0)), same)
