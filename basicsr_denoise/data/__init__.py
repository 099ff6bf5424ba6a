"""Datasets, the enlarged sampler and data loaders.

Dataset classes live in ``*_dataset.py`` modules and register themselves in
``DATASET_REGISTRY``; they are imported lazily on the first lookup, so importing
this package stays cheap.
"""

import functools
import random

import numpy as np
import torch
from torch.utils.data import DataLoader

from basicsr_denoise.data.sampler import EnlargedSampler
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.options import LOADER_KEYS
from basicsr_denoise.utils.registry import DATASET_REGISTRY, accepted_kwargs

__all__ = ['LOADER_KEYS', 'build_dataset', 'build_dataloader', 'worker_init_fn', 'EnlargedSampler']



def build_dataset(opt, key='datasets', source=None):
    """Build a dataset from its option block.

    The loader keys (:data:`LOADER_KEYS`) are removed and the rest is passed to
    ``DATASET_REGISTRY.build``, so an unknown key raises an ``OptionError`` naming
    ``source`` and ``key``. A dataset whose constructor has a ``phase`` argument
    receives the block's ``phase``.

    Args:
        opt (dict): The block, e.g. ``opt['datasets']['train']``, with a ``type``.
        key (str): Its place in the option file, for errors. Default: ``'datasets'``.
        source (str | None): The option file, for errors. Default: None.

    Returns:
        torch.utils.data.Dataset: The dataset.
    """
    if not isinstance(opt, dict):
        raise OptionError(f"{source + ': ' if source else ''}{key}: must be a mapping with a 'type' entry")
    rest = {k: v for k, v in opt.items() if k not in LOADER_KEYS}
    extra = {}
    if 'type' in rest and 'phase' in opt:
        cls = DATASET_REGISTRY.get(rest['type'], key=key, source=source)
        names = accepted_kwargs(cls)
        if names is None or 'phase' in names:
            extra['phase'] = opt['phase']
    return DATASET_REGISTRY.build(rest, key=key, source=source, **extra)


def worker_init_fn(worker_id, num_workers=1, rank=0, seed=0):
    """Seed numpy and ``random`` in a DataLoader worker from ``(seed, rank, worker_id)``.

    Args:
        worker_id (int): The worker id (given by the DataLoader).
        num_workers (int): Workers per rank (kept for BasicSR compatibility). Default: 1.
        rank (int): The process rank. Default: 0.
        seed (int): The base seed (``manual_seed``). Default: 0.
    """
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), int(rank), int(worker_id)]).generate_state(2)
    np.random.seed(int(state[0]))
    random.seed(int(state[1]))


def _rank():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=None, seed=None):
    """Build the DataLoader of a dataset, as in BasicSR.

    Train phase: ``batch_size_per_gpu`` and ``num_worker_per_gpu`` per process (one
    process per device; there is no DataParallel), ``drop_last=True``, and the
    given sampler (usually :class:`EnlargedSampler`, which yields
    ``(idx, sample_seed)`` items), or plain shuffling (``use_shuffle``, default True)
    when ``sampler`` is None. Other phases: batch size 1, no shuffling, no workers.

    The loader always gets its own ``torch.Generator`` seeded with ``seed or 0``, so
    creating an iterator never consumes the global torch RNG (needed for bit-exact
    resume). Workers are seeded by :func:`worker_init_fn` from ``(seed, rank, worker id)``
    and are persistent (option ``persistent_workers``, default True).

    Args:
        dataset (torch.utils.data.Dataset): The dataset.
        opt (dict): The ``datasets.<phase>`` block (``phase``, ``batch_size_per_gpu``,
            ``num_worker_per_gpu``, ``use_shuffle``, ``pin_memory``, ``persistent_workers``).
        num_gpu (int | str): Kept for BasicSR compatibility; unused (batch sizes are per process).
        dist (bool): Distributed training (one process per GPU). Default: False.
        sampler (torch.utils.data.Sampler | None): The train sampler. Default: None.
        seed (int | None): Base seed (``manual_seed``). Default: None (0).

    Returns:
        torch.utils.data.DataLoader: The loader.
    """
    phase = opt.get('phase', 'train')
    rank = _rank()
    if phase == 'train':
        for k in ('batch_size_per_gpu', 'num_worker_per_gpu'):
            if k not in opt:
                raise OptionError(f"datasets.{opt.get('name', phase)}.{k}: required for the train phase")
        batch_size = int(opt['batch_size_per_gpu'])
        num_workers = int(opt['num_worker_per_gpu'])
        shuffle = bool(opt.get('use_shuffle', True)) if sampler is None else False
        drop_last = True
    else:
        batch_size, num_workers, shuffle, drop_last = 1, 0, False, False
        sampler = None
    kwargs = dict(batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=num_workers,
                  drop_last=drop_last, pin_memory=bool(opt.get('pin_memory', False)),
                  generator=torch.Generator().manual_seed(int(seed or 0)))
    if num_workers > 0:
        kwargs['worker_init_fn'] = functools.partial(worker_init_fn, num_workers=num_workers, rank=rank,
                                                     seed=int(seed or 0))
        kwargs['persistent_workers'] = bool(opt.get('persistent_workers', True))
        if opt.get('prefetch_factor'):
            kwargs['prefetch_factor'] = int(opt['prefetch_factor'])
    return DataLoader(dataset, **kwargs)
