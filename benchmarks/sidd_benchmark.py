"""MPI zero-shot denoising of the SIDD sRGB blocks, written as the SIDD submission ``SubmitSrgb.mat``.

Usage::

    python benchmarks/sidd_benchmark.py --blocks datasets/SIDD/ValidationNoisyBlocksSrgb.mat \\
        -opt options/test/MPI/test_MPI_real_SIDD_fast.yml --out results/sidd \\
        --gt datasets/SIDD/ValidationGtBlocksSrgb.mat
    # the benchmark blocks (no ground truth; upload <out>/SubmitSrgb.mat)
    python benchmarks/sidd_benchmark.py --blocks BenchmarkNoisyBlocksSrgb.mat -opt ... --out results/sidd_bench
    # quick check: only the first 8 blocks are denoised, the others copied through
    python benchmarks/sidd_benchmark.py --blocks ... -opt ... --out results/sidd_quick --limit 8 --gt ...

The option file gives ``network_g``, ``path.pretrain_network_g`` (``--weights`` overrides it;
``--weights none`` = random initialisation) and the ``fill`` block; every block is filled
from fresh weights with the mask seed ``image_seed(fill.seed, f'{i}_{j}')`` (0-based image
and block indices).

Outputs in ``--out``:

* ``SubmitSrgb.mat``: ``DenoisedBlocksSrgb`` (cell ``images x blocks`` of ``H x W x 3``
  uint8), ``TimeMPSrgb`` (seconds per megapixel of the denoised blocks) and
  ``OptionalData`` (struct: MethodName, Authors, PaperTitle, Venue);
* ``metrics.json``: timing, the blocks processed, and with ``--gt`` the mean PSNR over the
  processed blocks (float output clipped to [0, 1], data range 1; also after uint8
  quantisation, which is what the SIDD server scores, and of the noisy input).

Bad files and options print one line ``error: ...`` and exit with status 2.
"""

import argparse
import os
import os.path as osp
import sys
import time

import numpy as np

if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from basicsr_denoise.data.sidd_dnd import (denoise_blocks, read_sidd_blocks, to_uint8,  # noqa: E402
                                          write_sidd_submission)
from basicsr_denoise.inference import MPIDenoiser  # noqa: E402
from basicsr_denoise.utils.atomic import atomic_write_json  # noqa: E402
from basicsr_denoise.utils.errors import DataError, exit_on_user_error  # noqa: E402
from benchmarks._common import blocks_note, psnr  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--blocks', required=True,
                        help='ValidationNoisyBlocksSrgb.mat or BenchmarkNoisyBlocksSrgb.mat.')
    parser.add_argument('-opt', '--opt', required=True, help='MPI test option file (network_g, path, fill).')
    parser.add_argument('--out', default='results/sidd', help='Output folder. Default: results/sidd.')
    parser.add_argument('--weights', default=None, help='Checkpoint overriding path.pretrain_network_g '
                        '(none = random initialisation).')
    parser.add_argument('--gt', default=None, help='ValidationGtBlocksSrgb.mat: report the mean PSNR.')
    parser.add_argument('--key', default=None, help='Variable name in --blocks. Default: auto-detect.')
    parser.add_argument('--limit', type=int, default=None,
                        help='Denoise only the first N blocks (image-major); copy the others through.')
    parser.add_argument('--device', default='auto', help='auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps.')
    return parser.parse_args(argv)


def mean_psnr(pred, gt, n):
    """Mean float PSNR (clipped, data range 1) over the first ``n`` blocks in image-major order."""
    p = pred.reshape(-1, *pred.shape[-3:])[:n]
    g = gt.reshape(-1, *gt.shape[-3:])[:n]
    return float(np.mean([psnr(a, b) for a, b in zip(p, g)]))


def run(args):
    noisy = read_sidd_blocks(args.blocks, key=args.key)  # (images, blocks, H, W, 3) float32 in [0, 1]
    gt = None
    if args.gt:
        gt = read_sidd_blocks(args.gt)
        if gt.shape != noisy.shape:
            raise DataError(f'{args.gt}: blocks of shape {gt.shape} do not match {args.blocks} {noisy.shape}')
    denoiser, info = MPIDenoiser.from_options(args.opt, weights=args.weights, device=args.device)
    total = int(np.prod(noisy.shape[:2]))
    n = total if args.limit is None else max(0, min(int(args.limit), total))
    print(f'SIDD: {total} blocks of {noisy.shape[2]}x{noisy.shape[3]} from {args.blocks}; denoising {n} '
          f'on {info["device"]} with {info["weights"]}', flush=True)

    start = time.perf_counter()
    out = denoise_blocks(noisy, lambda block, idx: denoiser.denoise_image(block, f'{idx[0]}_{idx[1]}'),
                         desc='SIDD', limit=n)
    seconds = time.perf_counter() - start
    megapixels = n * noisy.shape[2] * noisy.shape[3] / 1e6
    time_mp = seconds / megapixels if megapixels else 0.0

    os.makedirs(args.out, exist_ok=True)
    submission = write_sidd_submission(out, osp.join(args.out, 'SubmitSrgb.mat'), time_mp=time_mp)
    metrics = {
        'blocks': args.blocks, 'submission': submission, 'num_blocks': total, 'num_processed': n,
        **blocks_note(n, total),
        'seconds': seconds, 'seconds_per_block': seconds / n if n else 0.0, 'TimeMPSrgb': time_mp, **info,
    }
    if gt is not None and n:
        quantised = to_uint8(out).astype(np.float32) / 255.0
        metrics.update(gt=args.gt, psnr=mean_psnr(out, gt, n), psnr_uint8=mean_psnr(quantised, gt, n),
                       psnr_noisy=mean_psnr(noisy, gt, n))
        print(f'PSNR over {n} blocks: {metrics["psnr"]:.3f} dB (uint8 {metrics["psnr_uint8"]:.3f} dB, '
              f'noisy {metrics["psnr_noisy"]:.3f} dB)', flush=True)
    atomic_write_json(metrics, osp.join(args.out, 'metrics.json'))
    print(f'wrote {submission} and {osp.join(args.out, "metrics.json")}', flush=True)
    return metrics


def main(argv=None):
    """Command-line entry; returns the metrics dict. User errors print ``error: ...`` and exit with status 2."""
    args = parse_args(argv)
    return exit_on_user_error(run, args)


if __name__ == '__main__':
    main()
