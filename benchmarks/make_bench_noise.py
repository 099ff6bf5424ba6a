"""A fixed benchmark set with another noise: the clean crops of a ``shared/bench`` set (``gt/*.npy``), or
whole images of a folder, with noise from ``NOISE_REGISTRY`` (the same models as the option files), seeded
per image as ``make_inputs.py`` does (image ``k`` of the sorted list: seed ``1000 + k``), float and unclipped.

Examples::

    # the Poisson preset's noise on Z1
    python benchmarks/make_bench_noise.py ../shared/bench/Z1_CBSD68_s25_128 results/bench/Z1_CBSD68_poisson_128 \\
        '{type: Poisson, eta: 0.01}'
    # Kodak24 images 1-4 at full size, sigma 25
    python benchmarks/make_bench_noise.py datasets/Kodak24 results/bench/K1_Kodak24_s25_full \\
        '{type: Gaussian, sigma: 25}' --indices 0,1,2,3

For Gaussian noise use ``shared/bench/make_inputs.py`` itself (its numbers are NumPy's).
"""

import argparse
import glob
import os
import os.path as osp
import sys

import numpy as np
import torch
import yaml

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.noise import build_noise  # noqa: E402
from basicsr_denoise.utils.errors import exit_on_user_error  # noqa: E402
from basicsr_denoise.utils.img_util import imread, is_image_file  # noqa: E402


def make_set(src, dst, noise_opt, indices=None):
    """Write ``dst/gt`` (float copies) and ``dst/noisy``; returns the number of pairs.

    ``src`` holds ``gt/*.npy`` (a bench set) or image files; ``indices`` picks positions in its sorted list.
    """
    files = sorted(glob.glob(osp.join(src, 'gt', '*.npy')))
    if not files:
        files = sorted(f for f in glob.glob(osp.join(src, '*')) if is_image_file(f))
    if indices is not None:
        files = [files[i] for i in indices if i < len(files)]
    if not files:
        raise SystemExit(f'error: {src}: no gt/*.npy files and no images')
    noise = build_noise(noise_opt, key='noise')
    for sub in ('gt', 'noisy'):
        os.makedirs(osp.join(dst, sub), exist_ok=True)
    for k, path in enumerate(files):
        gt = imread(path).astype(np.float32)
        gt = np.repeat(gt, 3, axis=2) if gt.shape[2] == 1 else gt
        x = torch.from_numpy(gt).permute(2, 0, 1)[None]
        noisy = noise.sample(x, torch.Generator().manual_seed(1000 + k))[0].permute(1, 2, 0).numpy()
        name = osp.splitext(osp.basename(path))[0] + '.npy'
        np.save(osp.join(dst, 'gt', name), gt)
        np.save(osp.join(dst, 'noisy', name), noisy.astype(np.float32))
    return len(files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='A bench set folder holding gt/*.npy, or a folder of images.')
    parser.add_argument('dst', help='Output set folder (gt/ and noisy/).')
    parser.add_argument('noise', help="A noise block in YAML, e.g. '{type: Poisson, eta: 0.01}'.")
    parser.add_argument('--indices', default=None, help='Comma list of positions in the sorted file list.')
    args = parser.parse_args(argv)
    indices = [int(i) for i in args.indices.split(',')] if args.indices else None
    n = exit_on_user_error(make_set, args.src, args.dst, yaml.safe_load(args.noise), indices)
    print(f'{n} pairs in {args.dst}')
    return n


if __name__ == '__main__':
    main()
