"""A fixed benchmark set with another noise: the clean crops of a ``shared/bench`` set (``gt/*.npy``) with
noise from ``NOISE_REGISTRY`` (the same models as the option files), seeded per image as
``make_inputs.py`` does (image ``k`` of the sorted list: seed ``1000 + k``), float and unclipped.

Example (the Poisson preset's noise on Z1)::

    python tools/make_bench_noise.py ../shared/bench/Z1_CBSD68_s25_128 results/bench/Z1_CBSD68_poisson_128 \\
        '{type: Poisson, eta: 0.01}'

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


def make_set(src, dst, noise_opt):
    """Write ``dst/gt`` (copies) and ``dst/noisy``; returns the number of pairs."""
    files = sorted(glob.glob(osp.join(src, 'gt', '*.npy')))
    if not files:
        raise SystemExit(f'error: {src}: no gt/*.npy files')
    noise = build_noise(noise_opt, key='noise')
    for sub in ('gt', 'noisy'):
        os.makedirs(osp.join(dst, sub), exist_ok=True)
    for k, path in enumerate(files):
        gt = np.load(path).astype(np.float32)
        x = torch.from_numpy(gt).permute(2, 0, 1)[None]
        noisy = noise.sample(x, torch.Generator().manual_seed(1000 + k))[0].permute(1, 2, 0).numpy()
        name = osp.basename(path)
        np.save(osp.join(dst, 'gt', name), gt)
        np.save(osp.join(dst, 'noisy', name), noisy.astype(np.float32))
    return len(files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='A bench set folder holding gt/*.npy.')
    parser.add_argument('dst', help='Output set folder (gt/ and noisy/).')
    parser.add_argument('noise', help="A noise block in YAML, e.g. '{type: Poisson, eta: 0.01}'.")
    args = parser.parse_args(argv)
    n = exit_on_user_error(make_set, args.src, args.dst, yaml.safe_load(args.noise))
    print(f'{n} pairs in {args.dst}')
    return n


if __name__ == '__main__':
    main()
