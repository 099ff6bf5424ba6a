"""How noisy is the AR-DAE gradient? Cosine similarities of gradients on one fixed batch.

For each ``sigma_a``: the cosine between the gradients of two independent draws of ``u``, for the
paper's estimator (``plain``) and for antithetic pairs (``antithetic``, the same cost: two
forwards per image); and the cosine between the antithetic gradient in float32 and under bf16
autocast with channels-last (the same draw), which says whether bf16 still resolves the pair's
difference ``R(y + sigma_a*u) - R(y - sigma_a*u)``. A cosine near 0 means the gradient is noise.

Usage::

    python tools/n2s_gradient_noise.py --images datasets/CBSD68 \\
        --weights experiments/pretrained_models/N2S_gauss25_color_ours.pth --sigma-a 0.001,0.005,0.01,0.02,0.05
"""

import argparse
import json
import os
import os.path as osp
import sys

import numpy as np
import torch

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.inference import load_network  # noqa: E402
from basicsr_denoise.losses.ardae_loss import ARDAELoss  # noqa: E402
from basicsr_denoise.utils.errors import exit_on_user_error  # noqa: E402
from basicsr_denoise.utils.file_client import list_images  # noqa: E402
from basicsr_denoise.utils.img_util import imread  # noqa: E402


#: The architecture of a training checkpoint that does not store one (the Noise2Score recipes' network).
N2N_TIED = {'type': 'N2NUNet', 'num_in_ch': 3, 'num_out_ch': 3, 'tied': True}


def batch_of_crops(folder, n, size, sigma, seed=0):
    """``n`` top-left ``size`` crops of the first images of ``folder`` with Gaussian noise (0-255 ``sigma``)."""
    paths = [osp.join(folder, p) for p in list_images(folder, key='--images')[:n]]
    crops = [torch.from_numpy(imread(p)[:size, :size].transpose(2, 0, 1).copy()).float() for p in paths]
    x = torch.stack(crops)
    g = torch.Generator().manual_seed(seed)
    return x + sigma / 255 * torch.randn(x.shape, generator=g)


def gradient(net, y, sigma_a, estimator, seed, bf16=False):
    """The flattened gradient of the AR-DAE loss for one draw (seeded) on batch ``y``."""
    loss_fn = ARDAELoss(sigma_max=sigma_a, sigma_min=sigma_a, total_iter=1, estimator=estimator)
    torch.manual_seed(seed)
    y_bar, u, s = loss_fn.perturb(y, 1)
    net.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        pred = net(y_bar.contiguous(memory_format=torch.channels_last))
    loss_fn(pred, u, s).backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()]).clone()


def cosine(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def measure(net, y, sigmas):
    rows = []
    for s in sigmas:
        rows.append({
            'sigma_a': s,
            'plain_two_draws': cosine(gradient(net, y, s, 'plain', 1), gradient(net, y, s, 'plain', 2)),
            'antithetic_two_draws': cosine(gradient(net, y, s, 'antithetic', 1), gradient(net, y, s, 'antithetic', 2)),
            'antithetic_fp32_vs_bf16': cosine(gradient(net, y, s, 'antithetic', 1),
                                              gradient(net, y, s, 'antithetic', 1, bf16=True)),
        })
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', required=True, help='Folder of clean colour images (e.g. datasets/CBSD68).')
    parser.add_argument('--weights', default='N2S_gauss25_color_ours.pth', help='Score network checkpoint.')
    parser.add_argument('--sigma-a', default='0.001,0.005,0.01,0.02,0.05')
    parser.add_argument('--n', type=int, default=4, help='Images in the batch.')
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--sigma', type=float, default=25.0, help='Training noise (0-255).')
    parser.add_argument('--out', default=None, help='Optional JSON file.')
    args = parser.parse_args(argv)
    net, _, _ = exit_on_user_error(load_network, args.weights, fallback_network=N2N_TIED)
    net = net.to(memory_format=torch.channels_last).train()
    y = exit_on_user_error(batch_of_crops, args.images, args.n, args.size, args.sigma)
    rows = measure(net, y, [float(s) for s in args.sigma_a.split(',')])
    print('| sigma_a | plain: two draws | antithetic: two draws | antithetic: fp32 vs bf16 |')
    print('| --- | --- | --- | --- |')
    for r in rows:
        print(f"| {r['sigma_a']:g} | {r['plain_two_draws']:.3f} | {r['antithetic_two_draws']:.3f} | "
              f"{r['antithetic_fp32_vs_bf16']:.3f} |")
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump({'weights': args.weights, 'rows': rows, 'mean_abs_cos_plain': float(
                np.mean([abs(r['plain_two_draws']) for r in rows]))}, f, indent=2)
    return rows


if __name__ == '__main__':
    main()
