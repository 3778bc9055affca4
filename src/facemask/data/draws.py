"""An epoch drawn from each training source: large real sources take a fixed share instead of the whole epoch.

Twenty thousand real crops beside the dataset's 1,200 faces would make every epoch 20 times longer and the
dataset a rounding error; ``per_epoch`` draws that many of a source's images afresh each epoch (without
replacement within it), so an epoch's length and mix stay what the config says, and over the epochs the
whole source is seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class SourceDraws(Sampler[int]):
    """Indices into the concatenation of sources of ``sizes``: all of a source where its ``draws`` entry is
    None, else that many of its images at random; shuffled together. Random numbers come from torch's global
    generator, as the default shuffling's do, so a seed (and a resumed run's restored state) fixes them."""

    def __init__(self, sizes: Sequence[int], draws: Sequence[int | None]) -> None:
        if len(sizes) != len(draws):
            raise ValueError(f"{len(sizes)} sources but {len(draws)} draws")
        self.sizes, self.draws = (
            list(sizes),
            [size if d is None else min(d, size) for size, d in zip(sizes, draws, strict=True)],
        )

    def __len__(self) -> int:
        return sum(self.draws)

    def __iter__(self) -> Iterator[int]:
        offsets = torch.tensor([0, *self.sizes]).cumsum(0).tolist()
        drawn = [
            torch.randperm(size)[:count] + offset
            for size, count, offset in zip(self.sizes, self.draws, offsets, strict=False)
        ]
        indices = torch.cat(drawn)
        return iter(indices[torch.randperm(len(indices))].tolist())
