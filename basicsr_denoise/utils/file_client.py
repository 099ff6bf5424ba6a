"""Storage back-ends returning raw file bytes (disk or LMDB), as in BasicSR.

Option files choose the back-end with an ``io_backend`` block::

    io_backend:
      type: disk          # or: lmdb

Datasets decode the bytes with :func:`imfrombytes`, which returns the same
``(H, W, C)``, RGB, float32 [0, 1] layout as :func:`~basicsr_denoise.utils.img_util.imread`.

LMDB layout (written by ``tools/create_lmdb.py``): one entry per image, key =
path relative to the source folder without extension (``/`` separators), value =
the encoded file bytes; ``meta_info.txt`` in the LMDB folder lists
``key (h,w,c) compression`` per line.
"""

import os
import os.path as osp
import re

from basicsr_denoise.utils.errors import DataError, OptionError
from basicsr_denoise.utils.img_util import IMG_EXTENSIONS, imfrombytes, scandir  # noqa: F401 - re-exported

__all__ = ['FileClient', 'DiskBackend', 'LmdbBackend', 'imfrombytes', 'read_meta_info', 'strip_image_ext',
           'lmdb_keys', 'list_images', 'make_file_client']

_META_LINE = re.compile(r'^(?P<name>.+?)\s+\((?P<shape>\d+(?:\s*,\s*\d+)*)\)(?:\s+(?P<comp>\S+))?\s*$')


class DiskBackend:
    """Read files from the local file system.

    Args:
        **kwargs: Not accepted; present so a wrong key gives a clear error.
    """

    def __init__(self, **kwargs):
        if kwargs:
            raise OptionError(f"io_backend: unknown key(s) {', '.join(sorted(kwargs))} for type 'disk'")

    def get(self, filepath, client_key=None):
        """Return the bytes of ``filepath``.

        Raises:
            DataError: ``cannot read image <path>: <reason>``.
        """
        filepath = os.fspath(filepath)
        try:
            with open(filepath, 'rb') as f:
                return f.read()
        except FileNotFoundError as exc:
            raise DataError(f'cannot read image {filepath}: no such file') from exc
        except OSError as exc:
            raise DataError(f'cannot read image {filepath}: {exc.strerror or exc}') from exc


class LmdbBackend:
    """Read values from one or more LMDB databases.

    The environments are opened lazily in the process that reads them (and
    reopened after a fork), so the client is safe to send to DataLoader workers.

    Args:
        db_paths (str | list[str]): LMDB folders.
        client_keys (str | list[str]): One name per database, used as
            ``get(key, client_key=...)``. Default: ``'default'``.
        readonly (bool): Open read-only. Default: True.
        lock (bool): Use LMDB locking. Default: False.
        readahead (bool): Use OS read-ahead. Default: False.
        **kwargs: Further keyword arguments of ``lmdb.open``.

    Raises:
        DataError: if a database folder does not exist.
    """

    def __init__(self, db_paths, client_keys='default', readonly=True, lock=False, readahead=False, **kwargs):
        if isinstance(db_paths, (str, os.PathLike)):
            db_paths = [db_paths]
        if isinstance(client_keys, str):
            client_keys = [client_keys]
        db_paths = [os.fspath(p) for p in db_paths]
        if len(db_paths) != len(client_keys):
            raise OptionError(f'io_backend: db_paths ({len(db_paths)}) and client_keys ({len(client_keys)}) '
                              'must have the same length')
        for p in db_paths:
            if not osp.exists(osp.join(p, 'data.mdb')):
                raise DataError(f'cannot open lmdb {p}: no such database (missing {osp.join(p, "data.mdb")})')
        self.db_paths = dict(zip(client_keys, db_paths))
        self._open_kwargs = dict(readonly=readonly, lock=lock, readahead=readahead, **kwargs)
        self._envs = {}
        self._pid = None

    def _env(self, client_key):
        if self._pid != os.getpid():  # first use, or first use after a fork
            self._envs = {}
            self._pid = os.getpid()
        env = self._envs.get(client_key)
        if env is None:
            import lmdb
            path = self.db_paths[client_key]
            try:
                env = lmdb.open(path, subdir=True, **self._open_kwargs)
            except lmdb.Error as exc:
                raise DataError(f'cannot open lmdb {path}: {exc}') from exc
            self._envs[client_key] = env
        return env

    def get(self, key, client_key='default'):
        """Return the bytes stored under ``key`` in the database ``client_key``.

        Raises:
            DataError: for an unknown client key or a key that is not stored.
        """
        if client_key not in self.db_paths:
            raise DataError(f"lmdb: unknown client_key '{client_key}' (known: {', '.join(self.db_paths)})")
        with self._env(client_key).begin(write=False) as txn:
            value = txn.get(str(key).encode('utf-8'))
        if value is None:
            raise DataError(f"cannot read image {key}: key not found in lmdb {self.db_paths[client_key]}")
        return bytes(value)

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_envs'] = {}
        state['_pid'] = None
        return state


class FileClient:
    """A file client returning raw bytes, with the BasicSR interface.

    Args:
        backend (str): ``'disk'`` or ``'lmdb'``. Default: ``'disk'``.
        **kwargs: Back-end arguments (for LMDB: ``db_paths``, ``client_keys``, ...).

    Raises:
        OptionError: for an unknown back-end or back-end key.
    """

    _backends = {'disk': DiskBackend, 'lmdb': LmdbBackend}

    def __init__(self, backend='disk', **kwargs):
        if backend not in self._backends:
            raise OptionError(f"io_backend.type: unknown backend '{backend}'; known: {', '.join(self._backends)}")
        self.backend = backend
        try:
            self.client = self._backends[backend](**kwargs)
        except TypeError as exc:
            raise OptionError(f"io_backend: bad keys for type '{backend}' ({exc})") from exc

    def get(self, filepath, client_key='default'):
        """Return the raw bytes of a file path (disk) or key (LMDB)."""
        if self.backend == 'lmdb':
            return self.client.get(filepath, client_key)
        return self.client.get(filepath)


def strip_image_ext(name):
    """Remove a known image extension (see ``IMG_EXTENSIONS``) from ``name``, if present."""
    base, ext = osp.splitext(name)
    return base if ext.lower() in IMG_EXTENSIONS else name


def read_meta_info(meta_info_file):
    """Read a meta-info file: one entry per line, the first field a name.

    Accepts plain lists of relative paths (``tools/data_gen.py --mode list``) and
    BasicSR lines ``name (h,w,c) compression``. Empty lines and lines starting with
    ``#`` are ignored.

    Args:
        meta_info_file (str): The text file.

    Returns:
        list[tuple[str, tuple[int, ...] | None]]: ``(name, shape)`` per line; the
            shape is ``(h, w, c)`` when the line carries one, else None.

    Raises:
        DataError: if the file cannot be read or lists nothing.
    """
    meta_info_file = os.fspath(meta_info_file)
    try:
        with open(meta_info_file, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise DataError(f'cannot read meta_info_file {meta_info_file}: {exc.strerror or exc}') from exc
    entries = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        m = _META_LINE.match(line)
        if m:
            shape = tuple(int(s) for s in m.group('shape').split(','))
            entries.append((m.group('name'), shape))
        else:
            entries.append((line, None))
    if not entries:
        raise DataError(f'meta_info_file {meta_info_file} lists no images')
    return entries


def lmdb_keys(db_path, meta_info_file=None):
    """Keys and shapes of an LMDB made by ``tools/create_lmdb.py`` (from its meta_info.txt).

    Args:
        db_path (str): LMDB folder.
        meta_info_file (str | None): Meta-info file to use instead of
            ``<db_path>/meta_info.txt``. Default: None.

    Returns:
        list[tuple[str, tuple[int, ...] | None]]: ``(key, shape)`` pairs; keys have
            any image extension removed.

    Raises:
        DataError: if the LMDB or its meta-info file is missing.
    """
    db_path = os.fspath(db_path)
    if not osp.exists(osp.join(db_path, 'data.mdb')):
        raise DataError(f'cannot open lmdb {db_path}: no such database (missing {osp.join(db_path, "data.mdb")})')
    meta = meta_info_file or osp.join(db_path, 'meta_info.txt')
    if not osp.isfile(meta):
        raise DataError(f'cannot open lmdb {db_path}: missing meta info file {meta}')
    return [(strip_image_ext(name), shape) for name, shape in read_meta_info(meta)]


def make_file_client(io_backend, roots):
    """Build the file client of a dataset from its ``io_backend`` option and data roots.

    LMDB is used when ``io_backend.type`` is ``lmdb`` or when every root ends with
    ``.lmdb``; ``db_paths`` and ``client_keys`` are then filled from ``roots``
    unless given explicitly.

    Args:
        io_backend (dict | None): The option block (not modified). None means disk.
        roots (dict[str, str]): ``client_key -> data root``, e.g. ``{'gt': ...}``.

    Returns:
        tuple[FileClient, bool]: The client and whether it is an LMDB client.
    """
    opt = dict(io_backend or {'type': 'disk'})
    backend = opt.pop('type', 'disk')
    all_lmdb = all(str(r).rstrip('/\\').endswith('.lmdb') for r in roots.values())
    if backend == 'disk' and all_lmdb and roots:
        backend = 'lmdb'
    if backend == 'lmdb':
        opt.setdefault('db_paths', [os.fspath(r) for r in roots.values()])
        opt.setdefault('client_keys', list(roots.keys()))
    return FileClient(backend, **opt), backend == 'lmdb'


def dataroot_folders(dataroot, io_backend=None, key='dataroot_gt'):
    """The folders a ``dataroot`` option names: one folder, or a list of folders read one after the other
    (disk only; an LMDB is one folder).

    Raises:
        OptionError: an empty list, or a list with an LMDB back-end, naming ``key``.
    """
    folders = [str(f) for f in dataroot] if isinstance(dataroot, (list, tuple)) else [str(dataroot)]
    if not folders:
        raise OptionError(f'{key}: an empty list names no folder')
    lmdb = (io_backend or {}).get('type') == 'lmdb' or any(f.rstrip('/\\').endswith('.lmdb') for f in folders)
    if len(folders) > 1 and lmdb:
        raise OptionError(f'{key}: a list of folders is read from disk only, not from LMDB')
    return folders


def list_images(root, recursive=False, key='dataroot'):
    """Sorted image files of a folder, relative to it (``/`` separators).

    Args:
        root (str | None): The folder.
        recursive (bool): Search sub-folders too. Default: False.
        key (str): Option key of ``root``, named in errors. Default: ``'dataroot'``.

    Returns:
        list[str]: Relative paths of the files with an image extension.

    Raises:
        OptionError: if ``root`` is None.
        DataError: if the folder is missing or holds no image, naming it.
    """
    if root is None:
        raise OptionError(f'{key}: required option is missing')
    root = os.fspath(root)
    if not osp.isdir(root):
        raise DataError(f'{key}: no such folder {root}')
    names = list(scandir(root, suffix=IMG_EXTENSIONS, recursive=recursive))
    if not names:
        where = ' (searched recursively)' if recursive else ''
        raise DataError(f"{key}: no image files ({' '.join(IMG_EXTENSIONS)}) in {root}{where}")
    return names
