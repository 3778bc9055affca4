"""Accuracy per group from a test set's labels.csv."""

from __future__ import annotations

from pathlib import Path

import torch

from facemask.data.folder import load_image_folder
from facemask.evaluation.groups import group_accuracy
from tests.synthetic import make_image_folder


def test_accuracy_per_mask_type_from_labels_csv(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "set" / "mask28", per_class=3)
    rows = ["file,class,mask_type,person"]
    rows += [
        f"WithMask/{i}.png,WithMask,{'cloth_black' if i < 2 else 'surgical_white'},p{i}" for i in range(3)
    ]
    rows += [f"WithoutMask/{i}.png,WithoutMask,no-mask,q{i}" for i in range(3)]
    (root.parent / "labels.csv").write_text("\n".join(rows) + "\n")
    images = load_image_folder(root)
    # WithMask: 0.png right, 1.png wrong (cloth_black 1/2), 2.png right; WithoutMask: all right
    probs = torch.tensor(
        [
            (0.2 if path.name == "1.png" else 0.9) if label == 1 else 0.1
            for path, label in zip(images.paths, images.labels.tolist(), strict=True)
        ]
    )
    scores = group_accuracy("realworld", images, root, probs, threshold=0.5)
    assert scores == {
        "realworld/acc/cloth_black": 0.5,
        "realworld/n/cloth_black": 2.0,
        "realworld/acc/no-mask": 1.0,
        "realworld/n/no-mask": 3.0,
        "realworld/acc/surgical_white": 1.0,
        "realworld/n/surgical_white": 1.0,
    }
    pools = {"masks": ["cloth_black", "surgical_white"], "absent": ["n95"]}
    pooled = group_accuracy("realworld", images, root, probs, threshold=0.5, pools=pools)
    assert pooled["realworld/acc/masks"] == 2 / 3 and pooled["realworld/n/masks"] == 3.0
    assert "realworld/acc/absent" not in pooled, "a pool without members in the set is left out"


def test_no_labels_csv_no_groups(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "plain", per_class=2)
    images = load_image_folder(root)
    assert group_accuracy("test", images, root, torch.full((4,), 0.5), 0.5) == {}
