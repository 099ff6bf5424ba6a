"""The model zoo of third-party checkpoints: known by name and sha256, downloaded only on request, cached.

The MPI authors publish four checkpoints in their repository (``krennic999/MPI``, folder ``ckpts/``) and state
no licence for them, so this project never redistributes them. :data:`zoo.json <ZOO_FILE>` records, for each
file, the source URL (the raw file at a fixed commit of the authors' repository), its sha256 and size, its
licence status and the ``network_g`` it loads into. ``basicsr-denoise weights fetch NAME`` (:func:`fetch`)
downloads one file into the user cache (:func:`cache_dir`) with a progress bar, resumes a partial download,
and checks the sha256 before the file can be used. Nothing else here ever downloads: resolving a name that is
not fetched yet is a one-line error saying how to fetch it.

Environment:
    ``BASICSR_DENOISE_HOME``: the cache folder (default ``$XDG_CACHE_HOME/basicsr_denoise``, else
    ``~/.cache/basicsr_denoise``); files go to its ``weights/`` folder.
    ``BASICSR_DENOISE_ZOO_URL``: a base URL that replaces the registry's source (a mirror, or a test
    server); the file name is appended to it.

A name is the file name with or without ``.pth`` (``imgnet_30_multchannel_skip``).
"""

import hashlib
import http.client
import json
import os
import os.path as osp
import sys
import urllib.error
import urllib.request

from basicsr_denoise.utils.errors import CheckpointError

ZOO_FILE = osp.join(osp.dirname(osp.abspath(__file__)), 'zoo.json')
#: Seconds a connection may stay silent before a download counts as cut.
TIMEOUT_S = 60
#: Automatic resumes of a cut download within one :func:`fetch`.
RETRIES = 3
CHUNK = 1 << 16
_verified = {}


def zoo():
    """``{file name: {'origin', 'url', 'sha256', 'size', 'licence', 'pretrained_with', 'network_g'}}``."""
    with open(ZOO_FILE, encoding='utf-8') as f:
        return json.load(f)


def file_name(name):
    """``name`` with ``.pth`` appended when it has none (``imgnet_30_multchannel_skip`` -> ``...skip.pth``)."""
    return name if name.endswith('.pth') else name + '.pth'


def stem(name):
    """``name`` without ``.pth``: the name the command shows."""
    return name[:-4] if name.endswith('.pth') else name


def lookup(name):
    """The zoo file name of ``name`` (a bare name, ``.pth`` optional), or None."""
    if not isinstance(name, str) or not name or osp.basename(name) != name:
        return None
    name = file_name(name)
    return name if name in zoo() else None


def cache_dir():
    """The folder of fetched files: ``$BASICSR_DENOISE_HOME/weights``, else ``$XDG_CACHE_HOME/basicsr_denoise/
    weights``, else ``~/.cache/basicsr_denoise/weights``."""
    home = os.environ.get('BASICSR_DENOISE_HOME')
    if not home:
        xdg = os.environ.get('XDG_CACHE_HOME') or osp.join(osp.expanduser('~'), '.cache')
        home = osp.join(xdg, 'basicsr_denoise')
    return osp.join(osp.abspath(osp.expanduser(home)), 'weights')


def source_url(name):
    """Where :func:`fetch` downloads ``name`` from: ``$BASICSR_DENOISE_ZOO_URL/<file>`` when set, else the
    registry's URL (the authors' repository at a fixed commit)."""
    name = file_name(name)
    base = os.environ.get('BASICSR_DENOISE_ZOO_URL')
    return f"{base.rstrip('/')}/{name}" if base else zoo()[name]['url']


def sha256_of(path, chunk=1 << 20):
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def matches(path, expected):
    """Whether ``path``'s sha256 is ``expected`` (remembered per path, size and mtime, so a file is hashed once)."""
    st = os.stat(path)
    key = (osp.realpath(path), st.st_size, st.st_mtime_ns)
    if _verified.get(key) != expected:
        if sha256_of(path) != expected:
            return False
        _verified[key] = expected
    return True


def cached_path(name):
    """The fetched file of zoo entry ``name`` if it is in the cache (its sha256 unchecked), else None."""
    path = osp.join(cache_dir(), file_name(name))
    return path if osp.isfile(path) else None


def resolve(name):
    """The verified file of zoo entry ``name``: the fetched one, else a file of that name in the working
    folder (downloaded by hand), each checked against the zoo's sha256.

    Raises:
        CheckpointError: not fetched (how to fetch it), or a file whose sha256 differs (one line each).
    """
    name = file_name(name)
    entry = zoo()[name]
    for path in (cached_path(name), name if osp.isfile(name) else None):
        if path is None:
            continue
        if not matches(path, entry['sha256']):
            raise CheckpointError(f"{path}: sha256 {sha256_of(path)} does not match the zoo's ({entry['sha256']}) for "
                                  f'{stem(name)}: the file is damaged or another one; delete it and run '
                                  f'basicsr-denoise weights fetch {stem(name)}')
        return path
    raise CheckpointError(f'zoo checkpoint {stem(name)} is not downloaded yet: run basicsr-denoise weights fetch '
                          f'{stem(name)} (nothing is downloaded without it)')


class _Cut(Exception):
    """A download that ended before the whole file arrived (the partial file is kept)."""

    def __init__(self, done, reason):
        super().__init__(reason)
        self.done, self.reason = done, reason


def _say(message):
    print(message, file=sys.stderr, flush=True)


def _one_line(exc):
    reason = getattr(exc, 'reason', None) or exc
    return ' '.join(str(reason).split()) or type(exc).__name__


def _download(url, part, size, label, say):
    """Append the missing bytes of ``url`` to ``part`` (a Range request when it holds some); raises :class:`_Cut`
    when the body ends early, CheckpointError when the server cannot be used or serves a different size."""
    from basicsr_denoise.utils.logger import progress
    done = osp.getsize(part) if osp.isfile(part) else 0
    headers = {'Range': f'bytes={done}-'} if done else {}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        kept = ''
        if exc.code == 416 and done:  # the server's file is shorter than the part: not the registered file
            os.remove(part)
            kept = ' (the partial download was deleted)'
        raise CheckpointError(f'cannot download {label} from {url}: HTTP {exc.code} {_one_line(exc)}{kept}') from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise CheckpointError(f'cannot download {label} from {url}: {_one_line(exc)}') from None
    with resp:
        if done and resp.status != 206:  # the server ignored the Range: start again
            done = 0
        say(f'{label}: downloading {url}' + (f' (resuming at {done:,} of {size:,} bytes)' if done else
                                             f' ({size:,} bytes)'))
        length = resp.headers.get('Content-Length')
        total = done + int(length) if length and length.isdigit() else None
        if total is not None and total != size:
            raise CheckpointError(f'{url} serves {total:,} bytes but the zoo\'s {label} has {size:,}: not the '
                                  'registered file; refused')
        bar = progress(total=size, desc=label, unit='B')
        bar.unit_scale = True
        bar.update(done)
        with bar, open(part, 'ab' if done else 'wb') as f:
            while done < size:
                try:
                    chunk = resp.read(min(CHUNK, size - done))
                except (http.client.HTTPException, OSError) as exc:
                    raise _Cut(done, _one_line(exc)) from None
                if not chunk:
                    raise _Cut(done, 'the connection closed')
                f.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))


def fetch(name, retries=RETRIES, quiet=False):
    """Download zoo entry ``name`` into :func:`cache_dir`, check its sha256, and return its path.

    The bytes go to ``<file>.part`` first. A cut download keeps it, and the next attempt asks only for the
    missing bytes (an HTTP Range request); up to ``retries`` such resumes happen within one call. The whole
    file's sha256 is compared with the zoo's before the ``.part`` is renamed (atomically) to its name: a
    mismatch deletes it. A file already fetched and intact is not downloaded again.

    Args:
        name (str): A zoo name, ``.pth`` optional.
        retries (int): Automatic resumes after a cut. Default: :data:`RETRIES`.
        quiet (bool): No progress messages on stderr. Default: False.

    Returns:
        str: The verified file in the cache.

    Raises:
        CheckpointError: an unknown name, an unreachable server, a cut download after ``retries`` resumes (the
            partial file kept), or a file whose size or sha256 differs from the zoo's (deleted); one line each.
    """
    key = lookup(name)
    if key is None:
        raise CheckpointError(f"unknown zoo checkpoint '{name}' (known: {', '.join(stem(n) for n in zoo())})")
    entry, label = zoo()[key], stem(key)
    say = (lambda m: None) if quiet else _say
    dest = osp.join(cache_dir(), key)
    part = dest + '.part'
    if osp.isfile(dest):
        if matches(dest, entry['sha256']):
            say(f'{label}: already fetched, sha256 ok: {dest}')
            return dest
        os.remove(dest)
        say(f'{label}: the cached file failed its sha256 and was deleted; downloading it again')
    os.makedirs(osp.dirname(dest), exist_ok=True)
    if osp.isfile(part) and osp.getsize(part) > entry['size']:
        os.remove(part)
    url = source_url(key)
    for attempt in range(retries + 1):
        have = osp.getsize(part) if osp.isfile(part) else 0
        if have < entry['size']:
            try:
                _download(url, part, entry['size'], label, say)
            except _Cut as cut:
                if attempt < retries:
                    say(f'{label}: cut at {cut.done:,} of {entry["size"]:,} bytes ({cut.reason}); resuming')
                    continue
                raise CheckpointError(f'download of {label} cut at {cut.done:,} of {entry["size"]:,} bytes '
                                      f'({cut.reason}); {part} is kept: run basicsr-denoise weights fetch {label} '
                                      'again to resume') from None
        break
    actual = sha256_of(part)
    if actual != entry['sha256']:
        os.remove(part)
        raise CheckpointError(f"{url}: sha256 {actual} does not match the zoo's ({entry['sha256']}) for {label}: "
                              'refused and deleted')
    os.replace(part, dest)  # atomic: the name only ever holds a verified file
    _verified[(osp.realpath(dest), os.stat(dest).st_size, os.stat(dest).st_mtime_ns)] = entry['sha256']
    say(f'{label}: sha256 ok: {dest}')
    return dest


__all__ = ['zoo', 'lookup', 'cache_dir', 'source_url', 'fetch', 'resolve', 'cached_path', 'sha256_of', 'matches',
           'file_name', 'stem']
