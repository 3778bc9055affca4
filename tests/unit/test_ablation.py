"""Issue 12's ablation arms compose to what each one claims, on top of experiment=best."""

from __future__ import annotations

import pytest

PRECISION = {"metric": "precision", "target": 0.98}
BALANCED = {"metric": "balanced", "target": None}

#: arm -> (real training faces, real validation, real_margins, real_repeat, threshold rule, hard negatives)
ARMS = {
    "all": (False, False, None, None, PRECISION, 0),
    "real_train": (True, False, None, 1, PRECISION, 0),
    "real_val": (False, True, None, None, PRECISION, 0),
    "real": (True, True, None, 1, PRECISION, 0),
    "framed": (True, True, [0.1, 0.36], 2, PRECISION, 0),
    "balanced": (True, True, None, 1, BALANCED, 0),
    "best": (True, True, [0.1, 0.36], 2, BALANCED, 0),
    "hard": (True, True, [0.1, 0.36], 2, BALANCED, 1),
}


@pytest.mark.parametrize("arm", ARMS)
def test_each_arm_changes_what_it_says(train_cfg, arm: str) -> None:
    real_train, real_val, margins, repeat, rule, occluded = ARMS[arm]
    cfg = train_cfg("experiment=best", f"ablation={arm}")
    data = cfg.data
    assert bool(data.real_photos) == real_train and bool(data.val_sets) == real_val
    if real_train:
        assert (data.real_margins, data.real_repeat) == (margins, repeat)
    assert dict(cfg.operating_point) == rule
    assert data.synthetic.occluded == occluded and data.framing == "both"
