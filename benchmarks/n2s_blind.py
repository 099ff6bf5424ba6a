"""Blind noise-level estimation for Noise2Score (Gaussian): estimate error and PSNR cost against the known level.

For every sigma in ``--sigmas`` it adds Gaussian noise to the clean images of ``--dataroot`` exactly
as the test option files do (``SyntheticNoisyDataset``, noise seed ``--seed``), evaluates the score
network once per image, and applies Tweedie's formula at the known sigma and at the level chosen
by each blind method (``tv_grid``: the authors' TV search over sigma 5..55; ``tv_golden``: the
grid refined by golden-section search; ``mad`` / ``pca``: estimated from the noisy image alone).
It writes ``<out>/n2s_blind.json`` (per image: sigma_hat and PSNR for every method) and
``<out>/n2s_blind.md`` (mean |sigma_hat - sigma|, mean PSNR and its cost against the known level).

Usage::

    python benchmarks/n2s_blind.py --weights experiments/pretrained_models/N2S_gauss25_color_ours.pth \\
        --dataroot datasets/CBSD68 --sigmas 15,25,50 --out results/n2s_blind

The network is the one of ``--weights`` for every sigma: with the shipped sigma=25 checkpoint, the
sigma=15 and sigma=50 rows also measure how it transfers to a level it was not trained on.
"""

import argparse
import json
import os
import os.path as osp
import sys
import time

import numpy as np

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

from basicsr_denoise.utils.errors import exit_on_user_error  # noqa: E402

METHODS = ('tv_grid', 'tv_golden', 'mad', 'pca')


def evaluate(weights, dataroot, sigmas, methods=METHODS, seed=0, max_images=None, device='cpu'):
    """Per-image results ``{sigma: [{'name', 'psnr_known', '<m>_sigma_hat', '<m>_psnr', ...}]}``."""
    import torch

    from basicsr_denoise.data import build_dataset
    from basicsr_denoise.inference import N2SDenoiser
    from benchmarks._common import psnr
    from basicsr_denoise.noise import build_noise
    from basicsr_denoise.noise.blind import estimate_level

    den = N2SDenoiser.from_pretrained(weights, sigma=25, device=device)
    out = {}
    for sigma in sigmas:
        dataset = build_dataset({'type': 'SyntheticNoisyDataset', 'name': 'eval', 'phase': 'test',
                                 'dataroot_gt': dataroot, 'noise': {'type': 'Gaussian', 'sigma': sigma},
                                 'seed': seed, 'color': 'rgb' if den.channels == 3 else 'gray'}, key='--dataroot')
        noise = build_noise({'type': 'Gaussian', 'sigma': sigma})
        rows = []
        n = len(dataset) if not max_images else min(max_images, len(dataset))
        for i in range(n):
            item = dataset[i]
            y, gt = item['lq'][None].to(den.device), item['gt'][None]
            score = den.score(y)

            def cached(inp, _y=y, _score=score):
                if inp.shape != _y.shape or not torch.equal(inp, _y):  # Gaussian: the network input is y itself
                    return den.score(inp)
                return _score

            name = osp.splitext(osp.basename(item['gt_path']))[0]
            row = {'name': name, 'psnr_known': psnr(noise.tweedie(y, score), gt)}
            for m in methods:
                t0 = time.perf_counter()
                level, xhat = estimate_level(noise, y, cached, method=m)
                row[f'{m}_sigma_hat'] = float(level[0])
                row[f'{m}_psnr'] = psnr(xhat, gt)
                row[f'{m}_seconds'] = time.perf_counter() - t0
            rows.append(row)
            print(f"sigma {sigma:g} [{i + 1}/{n}] {name}: known {row['psnr_known']:.2f} dB, "
                  + ', '.join(f"{m} {row[f'{m}_sigma_hat']:.1f}/{row[f'{m}_psnr']:.2f}" for m in methods), flush=True)
        out[str(sigma)] = rows
    return out


def summarize(results, methods=METHODS):
    """``{sigma: {'psnr_known', '<m>': {'mae', 'bias', 'psnr', 'cost'}}}`` from :func:`evaluate`'s rows."""
    summary = {}
    for sigma, rows in results.items():
        s = float(sigma)
        known = float(np.mean([r['psnr_known'] for r in rows]))
        entry = {'images': len(rows), 'psnr_known': known}
        for m in methods:
            hat = np.array([r[f'{m}_sigma_hat'] for r in rows])
            psnr = float(np.mean([r[f'{m}_psnr'] for r in rows]))
            entry[m] = {'mae': float(np.mean(np.abs(hat - s))), 'bias': float(np.mean(hat - s)), 'psnr': psnr,
                        'cost': known - psnr}
        summary[sigma] = entry
    return summary


def to_markdown(summary, methods=METHODS):
    lines = ['| sigma | images | PSNR, known sigma | ' + ' | '.join(
        f'{m}: mean abs(sigma_hat - sigma) / bias / PSNR (cost)' for m in methods) + ' |',
        '| --- ' * (3 + len(methods)) + '|']
    for sigma, e in summary.items():
        cells = [f"{e[m]['mae']:.2f} / {e[m]['bias']:+.2f} / {e[m]['psnr']:.2f} ({e[m]['cost']:+.3f})" for m in methods]
        lines.append(f"| {sigma} | {e['images']} | {e['psnr_known']:.2f} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--weights', default=None, help="N2NUNet checkpoint (default: the project's own).")
    parser.add_argument('--dataroot', required=True, help='Folder of clean images (e.g. datasets/CBSD68).')
    parser.add_argument('--sigmas', default='15,25,50', help='Comma list of sigmas (0-255 scale).')
    parser.add_argument('--methods', default=','.join(METHODS), help=f"Comma list of {', '.join(METHODS)}.")
    parser.add_argument('--seed', type=int, default=0, help='Noise seed (as the test option files).')
    parser.add_argument('--max-images', type=int, default=None)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default='results/n2s_blind')
    args = parser.parse_args(argv)
    sigmas = [float(s) for s in args.sigmas.split(',')]
    methods = tuple(args.methods.split(','))
    results = exit_on_user_error(evaluate, args.weights, args.dataroot, sigmas, methods, args.seed, args.max_images,
                                 args.device)
    summary = summarize(results, methods)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'n2s_blind.json'), 'w', encoding='utf-8') as f:
        json.dump({'weights': args.weights, 'dataroot': args.dataroot, 'seed': args.seed, 'summary': summary,
                   'images': results}, f, indent=2)
    table = to_markdown(summary, methods)
    with open(osp.join(args.out, 'n2s_blind.md'), 'w', encoding='utf-8') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    main()
