"""The checkpoints known by name (ours, shipped; the model zoo's third-party ones, fetched), checked by sha256.

A shipped checkpoint is named by its file name alone (``MPI_syn_ours.pth``), in an option file
(``path.pretrain_network_g``), a preset, ``--weights`` or ``weights=``. It is looked up in

1. the folders of ``$BASICSR_DENOISE_WEIGHTS`` (``os.pathsep``-separated), then
2. this package (``importlib.resources``: a wheel or a non-editable ``pip install .`` carries the
   files here), then
3. ``experiments/pretrained_models/`` of a source checkout (an editable install),

and its sha256 is compared with :data:`registry.json <REGISTRY_FILE>` before it is used: a
damaged or replaced file is a one-line :class:`~basicsr_denoise.utils.errors.CheckpointError`.

The name of a third-party checkpoint of the model zoo (:mod:`basicsr_denoise.weights.zoo`, e.g.
``imgnet_30_multchannel_skip``) resolves to its file fetched into the user cache by
``basicsr-denoise weights fetch NAME``, sha256-checked too; one not fetched yet is a one-line error that
says so, and nothing is downloaded. Names take ``.pth`` or not. Anything with a folder is a path; a bare
name that is neither known nor a file is a one-line error listing the known names.

To ship a new checkpoint, or replace one, use
``python tools/ship_checkpoint.py`` (it writes the self-describing file, the registry entry and the
row of ``experiments/pretrained_models/README.md``).
"""

import json
import os
import os.path as osp

from basicsr_denoise.utils.errors import CheckpointError
from basicsr_denoise.weights import zoo
from basicsr_denoise.weights.zoo import sha256_of

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


def _bare(weights):
    return isinstance(weights, str) and bool(weights) and osp.basename(weights) == weights


def is_shipped_name(weights):
    """Whether ``weights`` is the bare name of a registered checkpoint (not a path), ``.pth`` optional."""
    return _bare(weights) and zoo.file_name(weights) in registry()


def zoo_network_g(weights):
    """The ``network_g`` of zoo entry ``weights`` (the architecture its file loads into), or None."""
    name = zoo.lookup(weights) if _bare(weights) and not is_shipped_name(weights) else None
    return zoo.zoo()[name]['network_g'] if name else None


def known_names():
    """Every name ``--weights`` takes: the shipped checkpoints', then the zoo's (without ``.pth``)."""
    return [zoo.stem(n) for n in registry()] + [zoo.stem(n) for n in zoo.zoo()]


def resolve_weights(weights):
    """The file to load for ``weights``: a shipped name -> the verified shipped file; a zoo name -> the verified
    fetched file; a path -> itself.

    Raises:
        CheckpointError: a registered name that is not shipped or not found (with how to make it), a zoo name
            not fetched yet (with the fetch command), a file whose sha256 differs from the registry's, or a
            bare name that is neither known nor a file (listing the known names); one line each.
    """
    if not _bare(weights):
        return weights
    if is_shipped_name(weights):
        name = zoo.file_name(weights)
        entry = registry()[name]
        if entry.get('sha256'):
            for d in search_dirs():
                path = osp.join(d, name)
                if osp.isfile(path):
                    return verify(path, name)
        where = ' or '.join(search_dirs())
        raise CheckpointError(f'no {name} in {where}: pass --weights PATH (e.g. the MPI authors\' released '
                              f"weights, see README), or train it with python basicsr_denoise/train.py -opt "
                              f"{entry.get('recipe')}")
    if zoo.lookup(weights):
        return zoo.resolve(weights)
    if osp.isfile(weights):
        return weights
    raise CheckpointError(f"weights '{weights}': no such file, and not a known name (known: "
                          f"{', '.join(known_names())}; a file in a folder needs its path)")


def known_checkpoints():
    """One dict per known checkpoint, shipped first, then the zoo's: ``name``, ``file``, ``origin``, ``status``,
    ``path`` (or None), ``size`` (bytes, or None when unknown), ``sha256``, ``licence``, ``source``, ``network_g``
    (None: stored in the file)."""
    rows = []
    for name, entry in registry().items():
        path = next((p for p in (osp.join(d, name) for d in search_dirs()) if osp.isfile(p)), None)
        status = 'shipped' if path else ('not found' if entry.get('sha256') else 'not shipped yet')
        rows.append({'name': zoo.stem(name), 'file': name, 'origin': 'ours, shipped with the package',
                     'status': status, 'path': path, 'size': osp.getsize(path) if path else None,
                     'sha256': entry.get('sha256'), 'licence': 'Apache-2.0 (this project)',
                     'source': path or f"train it: python basicsr_denoise/train.py -opt {entry.get('recipe')}",
                     'network_g': None})
    for name, entry in zoo.zoo().items():
        path = zoo.cached_path(name)
        part = osp.join(zoo.cache_dir(), name + '.part')
        if path:
            status = 'fetched, sha256 ok' if zoo.matches(path, entry['sha256']) else 'fetched, sha256 MISMATCH'
        elif osp.isfile(part):
            status = f"partial ({osp.getsize(part):,} of {entry['size']:,} bytes): fetch again to resume"
        else:
            status = 'not fetched'
        rows.append({'name': zoo.stem(name), 'file': name, 'origin': entry['origin'], 'status': status,
                     'path': path, 'size': entry['size'], 'sha256': entry['sha256'], 'licence': entry['licence'],
                     'source': zoo.source_url(name), 'network_g': entry['network_g']})
    return rows


def _flow(block):
    """A ``network_g`` block as one line of flow YAML: ``{type: MaskedNet, in_ch: 3, ...}``."""
    if isinstance(block, dict):
        return '{' + ', '.join(f'{k}: {_flow(v)}' for k, v in block.items()) + '}'
    return str(block)


def format_checkpoints(rows):
    """The text of ``basicsr-denoise weights list``: a block per checkpoint, then the cache folder."""
    lines = []
    for r in rows:
        size = f"{r['size']:,} bytes" if r['size'] is not None else 'size unknown'
        lines.append(f"{r['name']}: {r['origin']}")
        lines.append(f"  file:     {r['file']}, {size}")
        lines.append(f"  network:  {_flow(r['network_g']) if r['network_g'] else 'stored in the file'}")
        status = r['status'] + (f": {r['path']}" if r['path'] else '')
        if r['status'] == 'not fetched':
            status += f" (basicsr-denoise weights fetch {r['name']})"
        lines.append(f'  status:   {status}')
        lines.append(f"  sha256:   {r['sha256'] or '-'}")
        lines.append(f"  licence:  {r['licence']}")
        lines.append(f"  source:   {r['source']}")
    lines.append(f'cache: {zoo.cache_dir()} (BASICSR_DENOISE_HOME, else $XDG_CACHE_HOME/basicsr_denoise)')
    if os.environ.get('BASICSR_DENOISE_ZOO_URL'):
        lines.append(f"zoo files from BASICSR_DENOISE_ZOO_URL={os.environ['BASICSR_DENOISE_ZOO_URL']}")
    return '\n'.join(lines)


def weights_command(argv=None):
    """``basicsr-denoise weights list`` and ``basicsr-denoise weights fetch NAME...``; returns the exit status.

    Errors are :class:`~basicsr_denoise.utils.errors.CheckpointError` (the command prints them on one line).
    """
    import argparse
    parser = argparse.ArgumentParser(prog='basicsr-denoise weights',
                                     description='The known checkpoints: ours (shipped) and the model zoo of '
                                                 'third-party ones (downloaded on request).')
    sub = parser.add_subparsers(dest='action', required=True)
    sub.add_parser('list', help='Every known checkpoint: source, sha256, size, licence status, where it is.')
    fetch = sub.add_parser('fetch', help='Download zoo checkpoints into the user cache (resumed, sha256-checked).')
    fetch.add_argument('names', nargs='+', metavar='NAME', help='Zoo names (the file name, .pth optional).')
    args = parser.parse_args(argv)
    if args.action == 'list':
        print(format_checkpoints(known_checkpoints()), flush=True)
        return 0
    for name in args.names:
        if is_shipped_name(name):
            print(f'{zoo.stem(name)}: shipped with the package, nothing to fetch', flush=True)
            continue
        if not zoo.lookup(name):
            raise CheckpointError(f"unknown zoo checkpoint '{name}' (known: "
                                  f"{', '.join(zoo.stem(n) for n in zoo.zoo())}; shipped: "
                                  f"{', '.join(zoo.stem(n) for n in registry())})")
        print(zoo.fetch(name), flush=True)
    return 0


__all__ = ['registry', 'resolve_weights', 'verify', 'sha256_of', 'search_dirs', 'is_shipped_name', 'zoo_network_g',
           'known_names', 'known_checkpoints', 'format_checkpoints', 'weights_command']
