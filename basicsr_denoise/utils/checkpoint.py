"""Atomic checkpoint writing and safe checkpoint reading."""

import os
import pickle
import re
import tempfile

import torch

from basicsr_denoise.utils.errors import CheckpointError


def atomic_save(obj, path):
    """Save ``obj`` with :func:`torch.save` so that ``path`` is never seen half-written.

    The object is written to a temporary file in the same folder, flushed to disk and
    renamed over ``path`` (``os.replace`` is atomic on POSIX and Windows). A process
    killed at any moment leaves either the old file, the new file, or a stray
    ``.tmp`` file, never a truncated ``path``.

    Args:
        obj: Anything :func:`torch.save` accepts.
        path (str): Destination file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; checkpoints get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def safe_load(path, map_location='cpu'):
    """Load a checkpoint or training state without executing any code it carries.

    Uses ``torch.load(weights_only=True)``: only tensors, numbers, strings and plain
    containers are unpickled, so a downloaded ``.pth`` with a malicious
    ``__reduce__`` is refused instead of run.

    Args:
        path (str): The ``.pth`` / ``.state`` file.
        map_location: As in :func:`torch.load`. Default: ``'cpu'``.

    Raises:
        CheckpointError: if the file is missing, truncated, or not a plain weights file.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickling_reason(exc)
        risk = '; a full unpickle could run code from it' if 'global' in reason.lower() else ''
        raise CheckpointError(f'refusing to load {path}: it is not a plain weights file ({reason}){risk}') from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f'cannot read checkpoint {path}: {_first_line(exc)}') from None


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unpickling_reason(exc):
    """The specific reason inside torch's long weights-only error (e.g. ``Unsupported global: ...``)."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', str(exc))
    m = re.search(r'WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)', text, flags=re.S)
    reason = ' '.join((m.group(1) if m else _first_line(exc)).split())
    reason = reason.split('. Please use')[0].rstrip('.')
    return f'torch.load weights_only=True: {reason}'


def plain_data(value, key='checkpoint'):
    """``value`` as plain YAML-like data (dicts, lists, str, numbers, bools, None), which
    ``torch.load(weights_only=True)`` reads back; anything else is a one-line CheckpointError."""
    if isinstance(value, dict):
        return {str(k): plain_data(v, f'{key}.{k}') for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v, key) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise CheckpointError(f'{key}: {type(value).__name__} is not plain data (dicts, lists, strings, numbers)')


def export_checkpoint(src, dst, network_g=None, fill=None, score=None, param_key=None):
    """Write the self-describing checkpoint that the package ships, from a training checkpoint.

    The result is ``{'params': state_dict, 'network_g': {...}, 'fill': {...}}`` (MPI) or
    ``{'params': ..., 'network_g': ..., 'score': {...}}`` (Noise2Score): the architecture and the
    method's defaults stored as plain data beside the weights, so ``torch.load(weights_only=True)``
    still reads it and inference needs no option file. The network is built from ``network_g`` and
    the weights loaded into it strictly before anything is written.

    Example (a new Noise2Score checkpoint; then update the registry with ``tools/ship_checkpoint.py``,
    which calls this function)::

        export_checkpoint('experiments/N2S_gauss25_color/models/net_g_2000.pth',
                          'experiments/pretrained_models/N2S_gauss25_color_ours.pth',
                          network_g={'type': 'N2NUNet', 'num_in_ch': 3, 'num_out_ch': 3, 'tied': True},
                          score={'noise': {'type': 'Gaussian', 'sigma': 25}, 'clip_output': True})

    Args:
        src (str): A training checkpoint ``{'params': ..., 'params_ema': ...}`` (``experiments/<name>/
            models/net_g_<iter>.pth``), a bare state dict, or a self-describing file.
        dst (str): Output file (written atomically; its folder is created).
        network_g (dict | None): The ``network_g`` block of the training options. Default: None (the
            one ``src`` stores; an error when it stores none).
        fill (dict | None): MPI ``fill`` defaults (:data:`~basicsr_denoise.mpi.filling.FILL_SCHEMA`).
            Default: None (those ``src`` stores, if any).
        score (dict | None): Noise2Score ``score`` defaults (``ScoreModel``'s block, e.g. the noise
            family and level). Default: None (those ``src`` stores, if any).
        param_key (str | None): Which weights to ship. Default: None (``params_ema`` when ``src``
            has it, else ``params``).

    Returns:
        str: The sha256 of ``dst``.

    Raises:
        CheckpointError: unreadable ``src``, no ``network_g``, weights that do not fit it, or
            non-plain values in the blocks (one line each).
    """
    from basicsr_denoise.archs import build_network
    from basicsr_denoise.archs.arch_util import load_checkpoint, read_checkpoint
    from basicsr_denoise.weights import sha256_of
    if param_key is None:
        raw = safe_load(src)
        param_key = 'params_ema' if isinstance(raw, dict) and isinstance(raw.get('params_ema'), dict) else 'params'
    sd, meta = read_checkpoint(src, key=param_key)
    network_g = network_g if network_g is not None else meta.get('network_g')
    if network_g is None:
        raise CheckpointError(f'{src}: stores no network_g; pass the network_g block of its training options')
    net = build_network(dict(network_g), source=src)
    load_checkpoint(net, src, key=param_key, strict=True, state_dict=sd)
    out = {'params': {k: v.detach().cpu().clone().contiguous() for k, v in sd.items()},
           'network_g': plain_data(network_g, 'network_g')}
    for name, block in (('fill', fill if fill is not None else meta.get('fill')),
                        ('score', score if score is not None else meta.get('score'))):
        if block is not None:
            out[name] = plain_data(block, name)
    atomic_save(out, dst)
    return sha256_of(dst)
