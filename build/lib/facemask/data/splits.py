"""Validation splits of the training set: a stratified hold-out, or one fold of a stratified k-fold."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from facemask.errors import FacemaskError


def stratified_split(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices with ``fraction`` of every class in val, the same for the same seed.

    Train comes back shuffled so that unshuffled slices of it (``overfit_batches``) hold both classes.
    """
    generator = torch.Generator().manual_seed(seed)
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    for members in _shuffled_classes(labels, generator):
        is_val[members[: round(len(members) * fraction)]] = True
    return _train_val(is_val, generator)


def stratified_fold(
    labels: torch.Tensor, folds: int, fold: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices of fold ``fold`` in a stratified k-fold: over all folds, each sample is in val once."""
    if not 0 <= fold < folds:
        raise FacemaskError(f"data.fold={fold} is not one of the {folds} folds (0..{folds - 1})")
    generator = torch.Generator().manual_seed(seed)
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    for members in _shuffled_classes(labels, generator):
        is_val[members[fold::folds]] = True  # each class dealt round-robin over the folds
    return _train_val(is_val, generator)


def _shuffled_classes(labels: torch.Tensor, generator: torch.Generator) -> Iterator[torch.Tensor]:
    for label in labels.unique(sorted=True):
        members = (labels == label).nonzero().flatten()
        yield members[torch.randperm(len(members), generator=generator)]


def _train_val(is_val: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    train_idx = (~is_val).nonzero().flatten()
    return train_idx[torch.randperm(len(train_idx), generator=generator)], is_val.nonzero().flatten()
