"""Seeds averaged: each model and the mean of their P(mask), on the sets of a training config, before building an
ensemble or a student distilled from one.

Every set as that config's data module makes it (from its cache): the validation pool and its parts, Test in the
dataset's whole-photo framing and through the face detector (as deployment cuts it), realworld both ways, and the
mask-rate sets (a set the data root lacks is left empty). Each model at its own threshold; the mean at the validation pool's balanced threshold (the rule
``experiment=best`` trains with). realworld is shown, never used to choose.

    python scripts/seed_ensemble.py outputs/issue22/s64c3_s{0,1,2}/model.onnx --config experiment=best
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate

from facemask.bench import compose_train
from facemask.data.labelled import Photos
from facemask.errors import exit_on_user_error
from facemask.evaluation.calibration import operating_point, threshold_for
from facemask.evaluation.tables import markdown_table
from facemask.inference.classifier import load_classifier

COLUMNS = {
    "val": ("acc",),
    "test": ("acc", "precision", "recall"),
    "test_detected": ("acc", "precision", "recall"),
    "realworld": ("acc", "precision", "recall"),
    "realworld_detected": ("acc",),
    "bare_val": ("fpr",),
}


def labelled_sets(overrides: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """name -> (uint8 faces as data sets store them, labels) of the composed config's data module."""
    with tempfile.TemporaryDirectory() as folder:
        cfg = compose_train(Path(folder), *overrides)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    sets = {**datamodule.sets, **datamodule.mask_rate_sets}
    if Path(cfg.data.test_photos).is_dir():
        sets["test_detected"] = Photos(photos=cfg.data.test_photos).images(datamodule.ctx)
    return {name: (s.images, s.labels) for name, s in sets.items() if name in COLUMNS}


def probs_of(probs: dict[str, np.ndarray], model: int | None) -> dict[str, np.ndarray]:
    """One model's P(mask) on every set, or with ``model`` None the mean of them all."""
    return {name: p.mean(0) if model is None else p[model] for name, p in probs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="exported models (.onnx) or checkpoints of one input spec")
    parser.add_argument(
        "--config", nargs="*", default=[], metavar="OVERRIDE", help="the training config's overrides"
    )
    args = parser.parse_args()
    with exit_on_user_error():
        report(args)


def report(args: argparse.Namespace) -> None:
    """The table, printed."""
    classifiers = [load_classifier(path) for path in args.models]
    spec = classifiers[0].spec
    sets = labelled_sets(args.config)
    probs = {
        name: np.stack([c.predict_proba(spec.faces(images.numpy())) for c in classifiers])
        for name, (images, _) in sets.items()
    }
    pool = torch.from_numpy(probs["val"].mean(0))
    runs = [
        (Path(path).parent.name, c.threshold, probs_of(probs, i))
        for i, (path, c) in enumerate(zip(args.models, classifiers, strict=True))
    ]
    runs.append(("mean", threshold_for(pool, sets["val"][1], "balanced"), probs_of(probs, None)))
    rows = []
    for name, threshold, scored in runs:
        row = {"model": name, "threshold": threshold}
        for set_name, keys in COLUMNS.items():
            if set_name not in sets:  # not in this data root: an empty cell
                continue
            scores = operating_point(torch.from_numpy(scored[set_name]), sets[set_name][1], threshold)
            row.update({f"{set_name} {key}": scores[key] for key in keys})
        rows.append(row)
    columns = ["model", "threshold", *(f"{n} {k}" for n, keys in COLUMNS.items() for k in keys)]
    print(markdown_table(rows, columns), end="")


if __name__ == "__main__":
    main()
