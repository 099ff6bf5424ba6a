"""Filter a large image collection (e.g. ImageNet val) by size for masked pre-training.

Usage::

    python tools/data_gen.py --input /data/imagenet/val --output datasets/imagenet_val_256 --min-size 256
    python tools/data_gen.py --input /data/imagenet/val --mode list --list-file datasets/imagenet_val_256.txt

Every image under ``--input`` (searched recursively) is decoded; it is kept when
both its height and width are at least ``--min-size``. Kept images are copied
(``copy``) or symlinked (``symlink``) to ``--output`` with the same relative
path, or listed (``list``) as paths relative to ``--input``, one per line, in
``--list-file`` (default ``<output>/meta_info.txt``); that file can be the
``meta_info_file`` of ``ImageFolderDataset`` with ``dataroot_gt`` = ``--input``.

Corrupt or truncated images and non-image files never stop the run; the counts
of kept, too small, unreadable and non-image files are printed at the end.

Runs are resumable: in ``copy``/``symlink`` mode, outputs that already exist are
not read again (files are copied to a temporary name and renamed, so an
interrupted copy is never mistaken for a finished one); in ``list`` mode the
entries of an existing list file are kept and not checked again.
"""

import argparse
import os
import os.path as osp
import sys
from concurrent.futures import ProcessPoolExecutor

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from tqdm import tqdm  # noqa: E402

from basicsr_denoise.utils.atomic import atomic_copy, atomic_write_text  # noqa: E402
from basicsr_denoise.utils.errors import BasicSRDenoiseError, DataError, OptionError, exit_on_user_error  # noqa: E402
from basicsr_denoise.utils.img_util import imfrombytes, is_image_file  # noqa: E402

KEPT, TOO_SMALL, UNREADABLE = 'kept', 'too_small', 'unreadable'


def _jpeg_truncated(content):
    """Whether JPEG bytes lack the end-of-image marker in their second half."""
    return content[:2] == b'\xff\xd8' and content.rfind(b'\xff\xd9', len(content) // 2) < 0


def check_image(path, min_size):
    """Classify one file.

    Args:
        path (str): Image file.
        min_size (int): Minimum height and width.

    Returns:
        tuple[str, str]: ``(status, detail)`` with status ``'kept'``, ``'too_small'``
            or ``'unreadable'``.
    """
    try:
        with open(path, 'rb') as f:
            content = f.read()
        if _jpeg_truncated(content):
            return UNREADABLE, f'cannot read image {path}: truncated JPEG (no end marker)'
        img = imfrombytes(content, path, float32=False)
    except BasicSRDenoiseError as exc:
        return UNREADABLE, str(exc)
    except (OSError, ValueError, MemoryError) as exc:
        return UNREADABLE, f'cannot read image {path}: {exc}'
    h, w = img.shape[:2]
    if h < min_size or w < min_size:
        return TOO_SMALL, f'{h}x{w}'
    return KEPT, f'{h}x{w}'


def _work(job):
    """Worker: check one image and copy / link it when kept. Returns ``(rel, status, detail)``."""
    src, rel, dst, min_size, mode = job
    status, detail = check_image(src, min_size)
    if status == KEPT and mode in ('copy', 'symlink'):
        os.makedirs(osp.dirname(dst), exist_ok=True)
        if mode == 'copy':
            atomic_copy(src, dst)
        else:
            if osp.lexists(dst):
                os.remove(dst)
            os.symlink(osp.abspath(src), dst)
    return rel, status, detail


def _scan(root, exclude):
    """Relative paths of all files under ``root`` (sorted), skipping the folder ``exclude``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith('.') and osp.abspath(osp.join(dirpath, d)) != exclude)
        for f in sorted(filenames):
            if f.startswith('.'):
                continue
            out.append(osp.relpath(osp.join(dirpath, f), root).replace(os.sep, '/'))
    return out


def _read_list(path):
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def main(argv=None):
    """Run the filter.

    Args:
        argv (list[str] | None): Command-line arguments. Default: None (``sys.argv``).

    Returns:
        dict: Counts ``kept`` (newly kept), ``existing`` (already present, skipped),
            ``too_small``, ``unreadable``, ``not_image`` and ``total`` (files seen).

    Raises:
        DataError: for a missing input folder.
        OptionError: for inconsistent arguments.
    """
    parser = argparse.ArgumentParser(description='Keep the images whose sides are at least --min-size.')
    parser.add_argument('--input', required=True, help='folder searched recursively')
    parser.add_argument('--output', default=None, help='output folder (copy/symlink mode)')
    parser.add_argument('--min-size', type=int, default=256, help='minimum height and width (default 256)')
    parser.add_argument('--mode', choices=('copy', 'symlink', 'list'), default='copy')
    parser.add_argument('--list-file', default=None, help='list mode: output file (default <output>/meta_info.txt)')
    parser.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1), help='parallel processes')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)

    src_root = osp.abspath(args.input)
    if not osp.isdir(src_root):
        raise DataError(f'--input: no such folder {args.input}')
    if args.mode == 'list':
        list_file = args.list_file or (osp.join(args.output, 'meta_info.txt') if args.output else None)
        if list_file is None:
            raise OptionError('--list-file (or --output) is required in list mode')
        out_root = None
    else:
        if args.output is None:
            raise OptionError(f'--output is required in {args.mode} mode')
        out_root = osp.abspath(args.output)
        if out_root == src_root:
            raise OptionError('--output must differ from --input')

    files = _scan(src_root, exclude=out_root)
    counts = {'kept': 0, 'existing': 0, 'too_small': 0, 'unreadable': 0, 'not_image': 0, 'total': len(files)}
    listed = set()
    if args.mode == 'list' and osp.isfile(list_file):
        listed = set(_read_list(list_file))
    jobs = []
    for rel in files:
        if not is_image_file(rel):
            counts['not_image'] += 1
            continue
        dst = osp.join(out_root, rel) if out_root else None
        if (dst and osp.lexists(dst)) or rel in listed:
            counts['existing'] += 1
            continue
        jobs.append((osp.join(src_root, rel), rel, dst, args.min_size, args.mode))

    kept, problems = [], []
    bar = tqdm(total=len(jobs), desc='data_gen', unit='img', disable=args.quiet)
    if args.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            results = pool.map(_work, jobs, chunksize=max(1, min(64, len(jobs) // (4 * args.workers))))
            for res in results:
                _collect(res, counts, kept, problems)
                bar.update()
    else:
        for job in jobs:
            _collect(_work(job), counts, kept, problems)
            bar.update()
    bar.close()

    if args.mode == 'list':
        parent = osp.dirname(osp.abspath(list_file))
        os.makedirs(parent, exist_ok=True)
        atomic_write_text(list_file, ''.join(f'{rel}\n' for rel in sorted(listed | set(kept))))
    for detail in problems[:20]:
        print(f'unreadable: {detail}', file=sys.stderr)
    if len(problems) > 20:
        print(f'unreadable: ... and {len(problems) - 20} more', file=sys.stderr)
    print(f"kept {counts['kept']}, already present {counts['existing']}, too small {counts['too_small']}, "
          f"unreadable {counts['unreadable']}, not images {counts['not_image']} (of {counts['total']} files)")
    return counts


def _collect(res, counts, kept, problems):
    rel, status, detail = res
    counts[status] += 1
    if status == KEPT:
        kept.append(rel)
    elif status == UNREADABLE:
        problems.append(detail)


if __name__ == '__main__':
    exit_on_user_error(main)
