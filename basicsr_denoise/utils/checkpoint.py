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
