"""MPI zero-shot denoising of the DND sRGB blocks, written as the DND submission (per-block and bundled files).

Usage::

    python benchmarks/dnd_benchmark.py --data datasets/DND -opt options/test/MPI/test_MPI_real_SIDD_fast.yml \\
        --out results/dnd
    # quick check: only the first 4 blocks are denoised, the others copied through
    python benchmarks/dnd_benchmark.py --data datasets/DND -opt ... --out results/dnd_quick --limit 4
    # continue an interrupted run (the blocks listed in <out>/denoised_blocks.txt are kept)
    python benchmarks/dnd_benchmark.py --data datasets/DND -opt ... --out results/dnd --resume

``--data`` holds DND's ``info.mat`` and ``images_srgb/0001.mat`` ... (MATLAB v7.3). The
option file gives ``network_g``, ``path.pretrain_network_g`` (``--weights`` overrides it;
``--weights none`` = random initialisation) and the ``fill`` block; every block is filled
from fresh weights with the mask seed ``image_seed(fill.seed, 'NNNN_BB')`` (the 1-based
block file name).

Outputs in ``--out`` (the layout of the official ``dnd_denoise.py`` / ``bundle_submissions.py``):

* ``NNNN_BB.mat`` (1-based image and block): ``Idenoised_crop``, float32 ``H x W x 3`` in [0, 1];
* ``bundled/NNNN.mat``: ``Idenoised`` (cell ``1 x 20``), ``israw`` (false), ``eval_version``
  (``'1.0'``); zip the ``bundled`` folder for the DND site;
* ``denoised_blocks.txt``: the block files that hold a denoised result (for ``--resume``);
* ``metrics.json``: timing and the blocks processed (DND has no public ground truth).

Bad files and options print one line ``error: ...`` and exit with status 2.
"""

import argparse
import os
import os.path as osp
import sys
import time


if __package__ in (None, ''):
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from basicsr_denoise.data.sidd_dnd import (bundle_dnd_submission, dnd_block_name, dnd_blocks,  # noqa: E402
                                          read_dnd_image, read_dnd_info, write_dnd_block)
from basicsr_denoise.inference import MPIDenoiser  # noqa: E402
from basicsr_denoise.utils.atomic import atomic_write_json  # noqa: E402
from basicsr_denoise.utils.errors import DataError, exit_on_user_error  # noqa: E402
from benchmarks._common import blocks_note  # noqa: E402
from basicsr_denoise.utils.logger import progress  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', required=True, help='DND root holding info.mat and images_srgb/NNNN.mat.')
    parser.add_argument('-opt', '--opt', required=True, help='MPI test option file (network_g, path, fill).')
    parser.add_argument('--out', default='results/dnd', help='Output folder. Default: results/dnd.')
    parser.add_argument('--weights', default=None, help='Checkpoint overriding path.pretrain_network_g '
                        '(none = random initialisation).')
    parser.add_argument('--limit', type=int, default=None,
                        help='Denoise only the first N blocks (image-major); copy the others through.')
    parser.add_argument('--resume', action='store_true',
                        help='Keep the blocks listed in <out>/denoised_blocks.txt by an earlier run.')
    parser.add_argument('--device', default='auto', help='auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps.')
    return parser.parse_args(argv)


def run(args):
    info_path = osp.join(args.data, 'info.mat')
    boxes = read_dnd_info(info_path)
    total = sum(len(b) for b in boxes)
    n = total if args.limit is None else max(0, min(int(args.limit), total))
    denoiser, info = MPIDenoiser.from_options(args.opt, weights=args.weights, device=args.device)
    print(f'DND: {len(boxes)} images, {total} blocks from {args.data}; denoising {n} on {info["device"]} '
          f'with {info["weights"]}', flush=True)
    os.makedirs(args.out, exist_ok=True)

    log_path = osp.join(args.out, 'denoised_blocks.txt')  # block files holding a denoised result
    finished = set()
    if args.resume and osp.isfile(log_path):
        with open(log_path) as f:
            finished = {line.strip() for line in f if line.strip()}
    elif osp.isfile(log_path):
        os.remove(log_path)
    done = kept = 0
    seconds = megapixels = 0.0
    flat = 0
    bar = progress(total=total, desc='DND', unit='block')
    for i, image_boxes in enumerate(boxes):
        path = osp.join(args.data, 'images_srgb', '%04d.mat' % (i + 1))
        image = read_dnd_image(path)  # (H, W, 3) float32
        try:
            crops = dnd_blocks(image, image_boxes)
        except DataError as exc:
            raise DataError(f'{path}: {exc} (boxes from {info_path})') from None
        for k, crop in enumerate(crops):
            name = dnd_block_name(i, k)
            if name in finished and osp.isfile(osp.join(args.out, name)):
                kept += 1
            elif flat < n:
                start = time.perf_counter()
                out = denoiser.denoise_image(crop, osp.splitext(name)[0])
                seconds += time.perf_counter() - start
                megapixels += crop.shape[0] * crop.shape[1] / 1e6
                done += 1
                write_dnd_block(out, args.out, i, k)
                with open(log_path, 'a') as f:
                    f.write(name + '\n')
            else:
                write_dnd_block(crop, args.out, i, k)  # past --limit: the noisy block
            flat += 1
            bar.update(1)
    bar.close()
    bundled = bundle_dnd_submission(args.out, n_images=len(boxes), n_blocks=max(len(b) for b in boxes))
    metrics = {
        'data': args.data, 'bundled': osp.join(args.out, 'bundled'), 'num_images': len(boxes), 'num_blocks': total,
        'num_processed': n, 'num_denoised_now': done, 'num_kept_from_resume': kept, **blocks_note(n, total),
        'seconds': seconds, 'seconds_per_block': seconds / done if done else 0.0,
        'seconds_per_megapixel': seconds / megapixels if megapixels else 0.0, **info,
    }
    atomic_write_json(metrics, osp.join(args.out, 'metrics.json'))
    print(f'wrote {total} block files and {len(bundled)} bundled files in {args.out}', flush=True)
    return metrics


def main(argv=None):
    """Command-line entry; returns the metrics dict. User errors print ``error: ...`` and exit with status 2."""
    args = parse_args(argv)
    return exit_on_user_error(run, args)


if __name__ == '__main__':
    main()
