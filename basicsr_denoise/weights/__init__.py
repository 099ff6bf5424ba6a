"""The checkpoints shipped with basicsr_denoise: found by name, checked by sha256.

A shipped checkpoint is named by its file name alone (``MPI_syn_ours.pth``), in an option file
(``path.pretrain_network_g``), a preset, ``--weights`` or ``weights=``. It is looked up in

1. the folders of ``$BASICSR_DENOISE_WEIGHTS`` (``os.pathsep``-separated), then
2. this package (``importlib.resources``: a wheel or a non-editable ``pip install .`` carries the
   files here), then
3. ``experiments/pretrained_models/`` of a source checkout (an editable install),

and its sha256 is compared with :data:`registry.json <REGISTRY_FILE>` before it is used: a
damaged or replaced file is a one-line :class:`~basicsr_denoise.utils.errors.CheckpointError`.
Anything else is a path. To ship a new checkpoint, or replace one, use
``python tools/ship_checkpoint.py`` (it writes the self-describing file, the registry entry and the
row of ``experiments/pretrained_models/README.md``).
"""

import hashlib
import json
import os
import os.path as osp

from basicsr_denoise.utils.errors import CheckpointError

REGISTRY_FILE = osp.join(osp.dirname(osp.abspath(__file__)), 'registry.json')
#: ``experiments/pretrained_models`` of a source checkout (absent in an installed package).
SOURCE_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'experiments',
                      'pretrained_models')
_verified = {}


def registry():
    """``{name: {'sha256': hex or None, 'recipe': training option file}}``; sha256 None: not shipped (yet)."""
    with open(REGISTRY_FILE, encoding='utf-8') as f:
        return json.load(f)


def search_dirs():
    """The folders searched for shipped checkpoints, in order."""
    env = [d for d in os.environ.get('BASICSR_DENOISE_WEIGHTS', '').split(os.pathsep) if d]
    try:
        from importlib.resources import files
        package = str(files(__name__))
    except (ImportError, TypeError):  # pragma: no cover - Python < 3.9 or a zipped package
        package = osp.dirname(osp.abspath(__file__))
    return env + [package, SOURCE_DIR]


def sha256_of(path, chunk=1 << 20):
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def verify(path, name):
    """Compare ``path``'s sha256 with the registry's for ``name``; a mismatch is a one-line CheckpointError."""
    expected = registry()[name]['sha256']
    st = os.stat(path)
    key = (osp.realpath(path), st.st_size, st.st_mtime_ns)
    if _verified.get(key) == expected:
        return path
    actual = sha256_of(path)
    if actual != expected:
        raise CheckpointError(f'{path}: sha256 {actual} does not match the registry ({expected}) of the shipped '
                              f'{name}: the file is damaged or was replaced; reinstall basicsr_denoise or ship it '
                              'again with tools/ship_checkpoint.py')
    _verified[key] = expected
    return path


def is_shipped_name(weights):
    """Whether ``weights`` is the bare name of a registered checkpoint (not a path)."""
    return isinstance(weights, str) and osp.basename(weights) == weights and weights in registry()


def resolve_weights(weights):
    """The file to load for ``weights``: a registered name -> the verified shipped file; anything else -> itself.

    Raises:
        CheckpointError: a registered name that is not shipped or not found (with how to make it), or
            a shipped file whose sha256 differs from the registry's.
    """
    if not is_shipped_name(weights):
        return weights
    entry = registry()[weights]
    if entry.get('sha256'):
        for d in search_dirs():
            path = osp.join(d, weights)
            if osp.isfile(path):
                return verify(path, weights)
    where = ' or '.join(search_dirs())
    raise CheckpointError(f'no {weights} in {where}: pass --weights PATH (e.g. the MPI authors\' released '
                          f"weights, see README), or train it with python basicsr_denoise/train.py -opt "
                          f"{entry.get('recipe')}")


__all__ = ['registry', 'resolve_weights', 'verify', 'sha256_of', 'search_dirs', 'is_shipped_name']
