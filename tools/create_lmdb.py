"""Pack a folder of images into an LMDB for fast reading (BasicSR layout).

Usage::

    python tools/create_lmdb.py --input datasets/train/CBSD432 --output datasets/CBSD432.lmdb
    python tools/create_lmdb.py --input DIR --output X.lmdb --compress-level 1

Each image (searched recursively) is stored under the key ``relative/path``
without extension (``/`` separators). By default the original file bytes are
stored unchanged (JPEGs stay JPEGs, ``.npy`` stays ``.npy``); with
``--compress-level N`` images are decoded and re-encoded as PNG with that zlib
level (bit depth kept; ``.npy`` stays raw). ``meta_info.txt`` in the LMDB folder
lists ``key (h,w,c) compression`` per line, where compression is the PNG level or
``orig`` for original bytes. Read it with ``io_backend: {type: lmdb}`` or by
pointing ``dataroot_gt`` of ``ImageFolderDataset`` at the ``.lmdb`` folder.
"""

import argparse
import os
import os.path as osp
import shutil
import sys

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from basicsr_denoise.utils.errors import BasicSRDenoiseError, DataError, exit_on_user_error  # noqa: E402
from basicsr_denoise.utils.img_util import IMG_EXTENSIONS, imfrombytes, scandir  # noqa: E402

_BATCH = 1000


def _encode(path, compress_level):
    """Return ``(bytes, (h, w, c), compression)`` of an image file."""
    with open(path, 'rb') as f:
        content = f.read()
    img = imfrombytes(content, path, float32=False)  # validates; (H, W, C), RGB, stored dtype
    h, w, c = img.shape
    if compress_level is None or path.lower().endswith('.npy'):
        return content, (h, w, c), 'orig'
    bgr = img[..., ::-1] if c == 3 else img[..., 0]
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, int(compress_level)])
    if not ok:
        raise DataError(f'cannot re-encode image {path} as PNG')
    return buf.tobytes(), (h, w, c), str(compress_level)


def make_lmdb_from_folder(input_dir, output, compress_level=None, overwrite=False, progress=True):
    """Write every image under ``input_dir`` into the LMDB ``output``.

    Args:
        input_dir (str): Folder searched recursively for images.
        output (str): LMDB folder to create (name should end with ``.lmdb``).
        compress_level (int | None): Re-encode as PNG with this level (0-9);
            None keeps the original bytes. Default: None.
        overwrite (bool): Replace an existing ``output``. Default: False.
        progress (bool): Show a tqdm progress bar. Default: True.

    Returns:
        dict: ``{'written': int, 'unreadable': list[str]}``; unreadable files are
            skipped with a message.

    Raises:
        DataError: for a missing input, an existing output (without ``overwrite``),
            no images, or two files mapping to the same key.
    """
    import lmdb

    input_dir, output = os.fspath(input_dir), os.fspath(output)
    if not osp.isdir(input_dir):
        raise DataError(f'--input: no such folder {input_dir}')
    if compress_level is not None and not 0 <= int(compress_level) <= 9:
        raise DataError(f'--compress-level: must be in 0..9, got {compress_level}')
    if osp.exists(output):
        if not overwrite:
            raise DataError(f'--output: {output} exists already (use --overwrite to replace it)')
        shutil.rmtree(output)
    names = list(scandir(input_dir, suffix=IMG_EXTENSIONS, recursive=True))
    if not names:
        raise DataError(f'--input: no image files in {input_dir}')
    keys = {}
    for n in names:
        k = osp.splitext(n)[0]
        if k in keys:
            raise DataError(f'--input: {keys[k]} and {n} map to the same lmdb key {k!r}')
        keys[k] = n
    total = sum(osp.getsize(osp.join(input_dir, n)) for n in names)
    map_size = max(total * (12 if compress_level is not None else 2), 1 << 24) + (1 << 24)
    os.makedirs(output)
    env = lmdb.open(output, map_size=map_size)
    meta, unreadable, batch = [], [], []

    def _flush():
        while True:
            try:
                with env.begin(write=True) as txn:
                    for key, value in batch:
                        txn.put(key.encode('utf-8'), value)
                break
            except lmdb.MapFullError:
                env.set_mapsize(env.info()['map_size'] * 2)
        batch.clear()

    for k, n in tqdm(sorted(keys.items()), desc='create lmdb', unit='img', disable=not progress):
        path = osp.join(input_dir, n)
        try:
            value, (h, w, c), comp = _encode(path, compress_level)
        except BasicSRDenoiseError as exc:
            unreadable.append(path)
            tqdm.write(f'skipped: {exc}')
            continue
        batch.append((k, value))
        meta.append(f'{k} ({h},{w},{c}) {comp}')
        if len(batch) >= _BATCH:
            _flush()
    if batch:
        _flush()
    env.close()
    with open(osp.join(output, 'meta_info.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(meta) + ('\n' if meta else ''))
    return {'written': len(meta), 'unreadable': unreadable}


def main(argv=None):
    """Command-line entry point; returns the result of :func:`make_lmdb_from_folder`."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--input', required=True, help='folder of images (searched recursively)')
    parser.add_argument('--output', required=True, help='LMDB folder to create, e.g. X.lmdb')
    parser.add_argument('--compress-level', type=int, default=None,
                        help='re-encode as PNG with this zlib level (0-9); default: keep original bytes')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    args = parser.parse_args(argv)
    result = make_lmdb_from_folder(args.input, args.output, args.compress_level, args.overwrite)
    print(f"wrote {result['written']} images to {args.output}; unreadable (skipped): {len(result['unreadable'])}")
    return result


if __name__ == '__main__':
    exit_on_user_error(main)
