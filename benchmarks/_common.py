"""What the benchmark scripts share: the PSNR they report and the writer of their blocks in docs/benchmarks.md."""

import os.path as osp
import re
import sys

import numpy as np

REPO = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from basicsr_denoise.metrics.psnr_ssim import calculate_psnr, calculate_ssim  # noqa: E402
from basicsr_denoise.utils.atomic import atomic_write_text  # noqa: E402

BENCHMARKS_DOC = osp.join(REPO, 'docs', 'benchmarks.md')


def _hwc(x):
    """A ``(1, C, H, W)`` / ``(C, H, W)`` tensor or an ``(H, W[, C])`` array as a float HWC array."""
    if hasattr(x, 'detach'):
        x = x.detach().float().cpu().numpy()
        x = x[0] if x.ndim == 4 else x
        x = x.transpose(1, 2, 0)
    return np.asarray(x, dtype=np.float32)


def psnr(out, gt):
    """PSNR (data range 1) of the output clipped to [0, 1], without quantisation, as the MPI authors measure it.
    Takes tensors ``(1, C, H, W)`` / ``(C, H, W)`` or arrays ``(H, W[, C])``."""
    return float(calculate_psnr(np.clip(_hwc(out), 0, 1), _hwc(gt), float_mode=True))


def psnr_ssim(out, gt):
    """:func:`psnr` and the SSIM of the clipped output."""
    out, gt = np.clip(_hwc(out), 0, 1), _hwc(gt)
    return psnr(out, gt), float(calculate_ssim(out, gt, float_mode=True))


def blocks_note(n, total):
    """``limited`` and ``note`` of a SIDD/DND run that denoised the first ``n`` of ``total`` blocks."""
    return {'limited': n < total,
            'note': (f'only the first {n} blocks (image-major) were denoised; the others are the noisy input'
                     if n < total else 'all blocks denoised')}


def write_doc_block(name, body, doc=None):
    """Replace the block ``name`` of ``doc`` (default :data:`BENCHMARKS_DOC`, between ``<!-- BEGIN benchmark:
    name -->`` and ``<!-- END benchmark: name -->``) with ``body``, or append it when the file has none; atomic."""
    doc = doc or BENCHMARKS_DOC
    begin, end = f'<!-- BEGIN benchmark: {name} -->', f'<!-- END benchmark: {name} -->'
    text = open(doc, encoding='utf-8').read() if osp.isfile(doc) else '# Benchmarks\n'
    block = f'{begin}\n{body.strip()}\n{end}'
    pattern = re.compile(re.escape(begin) + r'.*?' + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text, count=1) if pattern.search(text) else text.rstrip('\n') + f'\n\n{block}\n'
    atomic_write_text(doc, text)
    return doc
