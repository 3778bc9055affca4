"""Issue 12's and issue 20's ablation arms, and issue 22's inputs, compose to what each one claims."""

from __future__ import annotations

import pytest

from facemask.data.datamodule import present

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
    sources = {name for name, source in data.sources.items() if source}
    assert sources == ({"dataset", "realmasks"} if real_train else {"dataset"}), (
        "issue 12's arms: no real crops"
    )
    assert bool(present(data.val_sets)) == real_val
    if real_train or real_val:
        assert data.val_weights == "size", "pinned to issue 12's pool, every image alike"
    if real_train:
        assert (data.real_margins, data.real_repeat) == (margins, repeat)
    assert dict(cfg.operating_point) == rule
    dataset = data.sources.dataset
    assert dataset.synthesis.occluded == occluded and dataset.framing == "both"
    assert (data.size, data.channels) == (28, 1), "measured at the 28x28 gray input: pinned"


#: issue 20's arm -> (real crop sources, validation sets beside the split, synthetic occluders)
CROP_ARMS = {
    "issue12": ([], ["val_real"], 0),
    "crops_masked": (["realfaces_masked"], ["val_real", "val_masked"], 0),
    "crops_bare": (["realfaces_bare"], ["val_real", "val_bare"], 0),
    "crops_both": (["realfaces_masked", "realfaces_bare"], ["val_real", "val_masked", "val_bare"], 0),
    "occluders": (["realfaces_masked", "realfaces_bare"], ["val_real", "val_masked", "val_bare"], 1),
}


@pytest.mark.parametrize("arm", CROP_ARMS)
def test_each_crop_arm_adds_what_it_says(train_cfg, arm: str) -> None:
    crops, val_sets, occluded = CROP_ARMS[arm]
    data = train_cfg("experiment=best", f"ablation={arm}").data
    assert list(data.sources) == ["dataset", "realmasks", *crops] and list(data.val_sets) == val_sets
    assert data.sources.dataset.synthesis.occluded == occluded
    assert data.val_weights == ("size" if arm == "issue12" else None), "issue 12 pooled every image alike"
    assert (data.size, data.channels) == (28, 1), "measured at the 28x28 gray input: pinned"
    for name in crops:
        source = data.sources[name]
        assert source.per_epoch > 0 and source.repeat == 1, "large sources are drawn, not repeated"


#: issue 22's input -> (size, channels, stem stride)
INPUTS = {
    "gray28": (28, 1, 1),
    "rgb28": (28, 3, 1),
    "gray48": (48, 1, 2),
    "rgb48": (48, 3, 2),
    "rgb64": (64, 3, 2),
}


@pytest.mark.parametrize("name", INPUTS)
@pytest.mark.parametrize("model", ["vgg16", "xception", "mobilenetv2"])
def test_each_input_sets_the_spec_and_the_stem_of_any_family(train_cfg, name: str, model: str) -> None:
    cfg = train_cfg(f"model={model}", f"input={name}")
    assert (cfg.data.size, cfg.data.channels, cfg.model.net.stem_stride) == INPUTS[name]
    assert cfg.data.augment.colour_p > 0, "one preset: its colour ops act on RGB batches only"


def test_the_bank_reads_64_px_colour_and_issue_20s_input_is_one_override(train_cfg) -> None:
    best = train_cfg("experiment=best")
    assert (best.data.size, best.data.channels, best.model.net.stem_stride) == INPUTS["rgb64"]
    issue20 = train_cfg("experiment=best", "input=gray28")
    assert (issue20.data.size, issue20.data.channels, issue20.model.net.stem_stride) == INPUTS["gray28"]
    assert issue20.data.sources == best.data.sources and issue20.model.optimizer == best.model.optimizer
