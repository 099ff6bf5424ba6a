"""torchrun-native distributed helpers.

Ranks come from the environment that ``torchrun`` sets (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). The backend is nccl on CUDA and
gloo otherwise, so ``torchrun --nproc_per_node=2`` also works on a CPU-only machine.
"""

import functools
import logging
import os
import sys

import torch
import torch.distributed as dist


def init_dist(launcher, backend=None, timeout_s=1800):
    """Start the default process group for ``launcher`` (``'none'`` or ``'pytorch'``).

    Args:
        launcher (str): ``'none'`` (single process) or ``'pytorch'`` (torchrun env vars).
        backend (str | None): ``'nccl'`` or ``'gloo'``; None picks nccl when CUDA is
            available, else gloo. Default: None.
        timeout_s (int): Collective timeout in seconds. Default: 1800.

    Returns:
        bool: whether the run is distributed.
    """
    if launcher == 'none':
        return False
    if launcher != 'pytorch':
        raise ValueError(f"--launcher must be 'none' or 'pytorch', got '{launcher}'")
    missing = [k for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE') if k not in os.environ]
    if missing:
        raise RuntimeError(f"--launcher pytorch needs torchrun's environment ({', '.join(missing)} unset); "
                           'start with torchrun --nproc_per_node=N ...')
    if dist.is_initialized():
        return True
    use_cuda = torch.cuda.is_available()
    backend = backend or ('nccl' if use_cuda else 'gloo')
    if use_cuda:
        torch.cuda.set_device(int(os.environ['LOCAL_RANK']) % torch.cuda.device_count())
    import datetime
    dist.init_process_group(backend=backend, init_method='env://', timeout=datetime.timedelta(seconds=timeout_s))
    return True


class destroy_on_exit:
    """Context manager: whatever happens inside, leave with the default process group destroyed (if one was started)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        shutdown_dist(ok=exc_type is None)
        return False


#: Set once this process has destroyed its process group (see :func:`exit_worker`).
_SHUT_DOWN = False


def shutdown_dist(ok=True):
    """Destroy the default process group, if one was started.

    After a clean run (``ok``) the ranks meet at a barrier first: a gloo rank that tears down
    while its peer is still closing its connections can abort ("terminate called without an
    active exception"). After an error there is no barrier, since a dead peer would never reach it.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if ok:
        try:
            dist.barrier()
        except Exception:  # a peer already gone: tear down anyway
            pass
    dist.destroy_process_group()
    global _SHUT_DOWN
    _SHUT_DOWN = True


def exit_worker(code=0):
    """End a command: in a torchrun worker whose process group :func:`shutdown_dist` destroyed, flush the
    streams and logs and leave at once with ``code`` (``os._exit``); elsewhere ``sys.exit(code)`` for a non-zero
    ``code`` and a plain return for 0 (so a command called in-process returns).

    Why: gloo's worker threads can outlive ``destroy_process_group`` and abort the interpreter's finalisation
    ("terminate called without an active exception", SIGABRT) after the work is done and written, which
    torchrun reports as a failed job and answers by killing the other ranks. Skipping the finalisation of a
    worker that has nothing left to do removes the race.
    """
    if _SHUT_DOWN:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        logging.shutdown()
        os._exit(code)
    if code:
        sys.exit(code)


def get_dist_info():
    """Return ``(rank, world_size)``; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process():
    """True on rank 0 (and in single-process runs)."""
    return get_dist_info()[0] == 0


def master_only(func):
    """Decorator: run ``func`` on rank 0 only; other ranks return None."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if is_main_process():
            return func(*args, **kwargs)
        return None

    return wrapper


def barrier():
    """Synchronise all ranks (no-op outside a process group)."""
    if get_dist_info()[1] > 1:
        dist.barrier()


def reduce_mean(values):
    """Average a dict of scalar floats over all ranks (every rank gets the mean)."""
    _, world = get_dist_info()
    if world == 1 or not values:
        return dict(values)
    keys = sorted(values)
    device = 'cuda' if dist.get_backend() == 'nccl' else 'cpu'
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= world
    return {k: v.item() for k, v in zip(keys, t)}


def bare(net):
    """The network inside a DataParallel/DistributedDataParallel wrapper (or ``net`` itself)."""
    if isinstance(net, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
        return net.module
    return net


def resolve_device(device='auto'):
    """The one device resolver of the package: an option or argument -> ``torch.device``.

    Args:
        device (str | int | torch.device | None): ``'auto'``/None (cuda on this rank's ``LOCAL_RANK``,
            then mps, then cpu); ``0`` forces the CPU and a positive number means ``'auto'`` (BasicSR's
            ``num_gpu``); or a device string such as ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``.
            Default: ``'auto'``.

    Raises:
        OptionError: an unknown device string (one line).
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == 'auto' or (isinstance(device, int) and not isinstance(device, bool) and device > 0):
        if torch.cuda.is_available():
            return torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
        if getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    if device == 0:
        return torch.device('cpu')
    try:
        return torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        from basicsr_denoise.utils.errors import OptionError
        raise OptionError(f"device: unknown device '{device}' (auto, cpu, cuda, cuda:N, mps)") from None


def shard(items, rank=None, world=None):
    """The part of ``items`` that this rank handles: ``items[rank::world]`` (all of them in one process)."""
    if rank is None or world is None:
        rank, world = get_dist_info()
    return list(items)[rank::world]


def gather_shards(local):
    """Every rank's ``local`` list, merged back into the order :func:`shard` split it from (all ranks get it)."""
    _, world = get_dist_info()
    if world == 1:
        return list(local)
    parts = [None] * world
    dist.all_gather_object(parts, list(local))
    merged = []
    for i in range(max(len(p) for p in parts)):
        merged += [p[i] for p in parts if i < len(p)]
    return merged
