"""Atomic file writes: a reader, or a process killed mid-write, sees the old file or the new one, never half.

Every write of the package and its tools that must not be seen half-done goes through :func:`atomic_output`.
"""

import contextlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_output(path, suffix='.tmp'):
    """Yield a temporary path in ``path``'s folder (created) to write to; on success it is renamed over ``path``
    (``os.replace`` is atomic on POSIX and Windows), on an exception removed. A process killed at any moment
    leaves the old file, the new file, or a stray ``.<name>.*<suffix>`` file, never a truncated ``path``.

    Args:
        path (str): Destination file.
        suffix (str): End of the temporary name; writers that pick the format by extension (images) pass
            ``'.tmp' + ext``. Default: ``'.tmp'``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write(path, write, binary=True):
    """Write ``path`` atomically through ``write(f)`` on an open temporary file, flushed to disk first.

    Args:
        path (str): Destination file.
        write (callable): ``write(f)`` writes the content to the open file ``f``.
        binary (bool): Open ``f`` in binary mode, else as UTF-8 text. Default: True.
    """
    with atomic_output(path) as tmp:
        with open(tmp, 'wb') if binary else open(tmp, 'w', encoding='utf-8') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text):
    """Write the string ``text`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text), binary=False)


def atomic_write_json(obj, path, **kwargs):
    """Write ``obj`` as indented JSON (and a final newline) to ``path`` atomically; ``kwargs`` go to
    :func:`json.dumps`."""
    atomic_write_text(path, json.dumps(obj, **{'indent': 2, **kwargs}) + '\n')


def atomic_save(obj, path):
    """Save ``obj`` with :func:`torch.save` to ``path`` atomically (checkpoints, training states)."""
    import torch
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_copy(src, dst):
    """Copy the file ``src`` to ``dst`` atomically."""
    import shutil
    with atomic_output(dst) as tmp:
        shutil.copyfile(src, tmp)
