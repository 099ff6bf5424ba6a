"""Enlarged distributed sampler that yields ``(idx, sample_seed)`` pairs."""

import hashlib
import math

import numpy as np
from torch.utils.data import Sampler

_MASK63 = (1 << 63) - 1


def sample_seed(seed, epoch, position):
    """Deterministic 63-bit seed of one sample.

    Args:
        seed (int): The sampler seed (usually ``manual_seed``).
        epoch (int): The epoch.
        position (int): Position of the sample in the whole enlarged epoch,
            before the split across ranks.

    Returns:
        int: A seed in ``[0, 2**63)`` (BLAKE2b of ``'seed:epoch:position'``).
    """
    digest = hashlib.blake2b(f'{int(seed)}:{int(epoch)}:{int(position)}'.encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'little') & _MASK63


class EnlargedSampler(Sampler):
    """Sampler that enlarges a dataset, splits it across ranks and seeds each sample.

    Like BasicSR's ``EnlargedSampler``, one epoch covers ``ratio`` passes over the
    dataset (``dataset_enlarge_ratio``), padded so that every rank gets the same
    number of samples; rank ``r`` takes positions ``r, r + R, r + 2R, ...`` of the
    shuffled epoch. Unlike BasicSR, each item is a pair ``(idx, sample_seed)``:
    ``idx`` indexes the real dataset (enlarged index modulo its length) and
    ``sample_seed`` is a hash of ``(seed, epoch, position)``, from which the dataset
    draws its crops, flips and noise (see :func:`~basicsr_denoise.data.transforms.split_index`).
    A sample therefore looks the same whichever worker loads it, and training
    resumed mid-epoch with :meth:`set_start` sees exactly the remaining samples.

    Args:
        dataset_len (int | Sized): Length of the dataset (or the dataset itself).
        num_replicas (int): Number of ranks. Default: 1.
        rank (int): This rank. Default: 0.
        ratio (int): Enlarge ratio (``dataset_enlarge_ratio``). Default: 1.
        shuffle (bool): Shuffle each epoch (a permutation seeded by ``seed`` and
            the epoch). Default: True.
        seed (int): Seed of the permutations and the sample seeds. Default: 0.
    """

    def __init__(self, dataset_len, num_replicas=1, rank=0, ratio=1, shuffle=True, seed=0):
        if not isinstance(dataset_len, int):
            dataset_len = len(dataset_len)
        if dataset_len <= 0:
            raise ValueError('EnlargedSampler: the dataset is empty')
        if not 0 <= rank < num_replicas:
            raise ValueError(f'EnlargedSampler: rank {rank} not in [0, {num_replicas})')
        self.dataset_len = dataset_len
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.ratio = ratio
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.start = 0
        self.num_samples = math.ceil(dataset_len * ratio / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def _positions(self):
        """Enlarged indices of the whole epoch (all ranks), in order."""
        if self.shuffle:
            rng = np.random.default_rng([self.seed & _MASK63, self.epoch])
            return rng.permutation(self.total_size)
        return np.arange(self.total_size)

    def __iter__(self):
        order = self._positions()
        positions = range(self.rank, self.total_size, self.num_replicas)
        for i, pos in enumerate(positions):
            if i < self.start:
                continue
            yield int(order[pos]) % self.dataset_len, sample_seed(self.seed, self.epoch, pos)

    def __len__(self):
        """Samples per rank in a full epoch (not reduced by :meth:`set_start`)."""
        return self.num_samples

    def set_epoch(self, epoch):
        """Select the epoch (permutation and sample seeds).

        A different epoch number clears :meth:`set_start`; calling it again with the
        current epoch keeps the start, so ``set_epoch(e); set_start(n)`` before a
        BasicSR-style loop that calls ``set_epoch(e)`` again still resumes at ``n``.

        Args:
            epoch (int): The epoch.
        """
        if int(epoch) != self.epoch:
            self.start = 0
        self.epoch = int(epoch)

    def set_start(self, n):
        """Skip the first ``n`` samples of this rank in the current epoch (exact mid-epoch resume).

        Args:
            n (int): Samples of this rank already consumed, e.g.
                ``iters_done_in_epoch * batch_size_per_gpu``.
        """
        if n < 0:
            raise ValueError(f'EnlargedSampler.set_start: n must be >= 0, got {n}')
        self.start = int(n)
