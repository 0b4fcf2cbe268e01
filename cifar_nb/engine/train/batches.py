"""The generator trainers' batch order: which images each step trains on, as a function of the step alone.

A fresh permutation per epoch, seeded from (run seed, epoch), with the ragged last batch dropped as a
DataLoader with drop_last would. Because nothing but the step number decides a batch, a run resumed from a
checkpoint draws exactly the batches the uninterrupted run would have.
"""
from __future__ import annotations

import torch


def mix_seed(seed: int, n: int) -> int:
    """One 63-bit seed from the run's seed and a counter (an epoch, a step)."""
    return (seed * 1_000_003 + n) % (2**63 - 1)


class EpochBatches:
    """Step -> batch. The trainers check batch_size <= n before building anything."""

    def __init__(self, n: int, batch_size: int, seed: int, device):
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.steps_per_epoch = n // batch_size
        self._perm, self._epoch = None, -1

    def indices(self, step: int) -> torch.Tensor:
        """Indices of the images of `step`'s batch, on the training device."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:        # one permutation per epoch, drawn on the CPU: same on every device
            g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
            self._perm, self._epoch = torch.randperm(self.n, generator=g).to(self.device), epoch
        return self._perm[pos * self.batch_size:(pos + 1) * self.batch_size]
