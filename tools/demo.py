"""`make demo`: zero-shot MPI denoising of the embedded sample images with the shipped checkpoint.

Adds Gaussian noise (sigma 25, seed 0, clipped and saved as 8-bit PNG like a real photo) to
the clean crops in ``datasets/samples/``, then denoises them through the user command
(``basicsr-denoise``'s code path, the default preset ``quick``) with the project's own
pre-trained weights. Prints per-image PSNR and time; writes the outputs, one
``<name>_compare.png`` (noisy | denoised | clean) per image and ``metrics.json`` to
``results/demo/``.

Usage::

    python tools/demo.py [--preset quick] [--sigma 25] [--out results/demo] [--weights PATH]
"""

import argparse
import os
import os.path as osp
import sys
import time

import numpy as np

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.cli import denoise_files  # noqa: E402
from basicsr_denoise.presets import DEFAULT_PRESET  # noqa: E402
from basicsr_denoise.utils.errors import exit_on_user_error  # noqa: E402
from basicsr_denoise.utils.img_util import imread, imwrite, is_image_file  # noqa: E402

REPO = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))


def make_noisy(samples, out, sigma, seed):
    """Write noisy 8-bit PNG copies of the clean samples; returns their paths."""
    os.makedirs(out, exist_ok=True)
    paths = []
    for k, name in enumerate(sorted(f for f in os.listdir(samples) if is_image_file(f))):
        clean = imread(osp.join(samples, name))
        rng = np.random.default_rng(seed * 100003 + k)
        noisy = clean + rng.normal(0.0, sigma / 255.0, clean.shape).astype(np.float32)
        path = osp.join(out, osp.splitext(name)[0] + '.png')
        imwrite(noisy, path)  # clipped and quantised to 8 bits, as a camera would
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', default=osp.join(REPO, 'datasets', 'samples'))
    parser.add_argument('--out', default=osp.join(REPO, 'results', 'demo'))
    parser.add_argument('--sigma', type=float, default=25.0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--preset', default=DEFAULT_PRESET)
    parser.add_argument('--weights', default=None)
    parser.add_argument('--iterations', type=int, default=None, help="Override the preset's number of steps.")
    args = parser.parse_args(argv)
    t0 = time.time()
    files = exit_on_user_error(make_noisy, args.samples, osp.join(args.out, 'noisy'), args.sigma, args.seed)
    res = exit_on_user_error(denoise_files, files, osp.join(args.out, 'denoised'), preset=args.preset,
                             weights=args.weights, gt_dir=args.samples, iterations=args.iterations)
    print(f"demo: {res['count']} images, mean PSNR {res['mean']['psnr']:.2f} dB "
          f"(noisy {np.mean([r['psnr_noisy'] for r in res['images']]):.2f} dB), "
          f"{time.time() - t0:.0f} s in all; outputs and comparison pictures in {osp.join(args.out, 'denoised')}")
    return res


if __name__ == '__main__':
    main()
