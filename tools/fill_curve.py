"""PSNR of MPI's running ensemble against the number of filling steps, on one image of a bench set.

One fill (:meth:`IterativeFiller.fill_once`) runs for the largest step count; the ensemble is scored at each of
``--checks`` (so the rows share one trajectory: a fill stopped at step ``t`` gives the same result when the
schedule does not depend on the total, as with ``quick``'s constant lr and beta), and at each check
``--passes`` forward-only passes are added to a copy of the ensemble (their own masks), the trajectory
untouched. The image is read from ``SET/noisy`` and ``SET/gt`` (``.npy`` float HWC, as
``shared/bench/make_inputs.py`` and ``tools/make_bench_noise.py`` write them); the masks come from
``image_seed(--seed, name)`` like every other entry point.

Example (the development photo kodim07 with the authors' weights)::

    OMP_NUM_THREADS=1 python tools/fill_curve.py results/bench/D4_Kodak24_s25_full kodim07 \\
        --weights ../shared/reference/mpi_official/imgnet_30_multchannel_skip.pth --checks 75,100,125 --passes 20

Prints one line per check and writes ``--out`` (JSON) when given.
"""

import argparse
import copy
import os.path as osp
import sys
import time

import numpy as np
import torch

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.archs.arch_util import pad_to_multiple  # noqa: E402
from basicsr_denoise.cli import write_json_atomic  # noqa: E402
from basicsr_denoise.inference import MPIDenoiser  # noqa: E402
from basicsr_denoise.metrics.psnr_ssim import calculate_psnr  # noqa: E402
from basicsr_denoise.mpi.filling import image_seed  # noqa: E402


def psnr(y, gt):
    """PSNR of ``(1, C, H, W)`` tensors as every benchmark here scores it (float mode: clipped to [0, 1])."""
    return calculate_psnr(y[0].numpy(), gt[0].numpy(), input_order='CHW', float_mode=True)


def _ints(text):
    return sorted({int(v) for v in text.split(',') if v})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('set', help='Folder holding noisy/ and gt/ (.npy).')
    parser.add_argument('image', help='Image name (file stem).')
    parser.add_argument('--weights', required=True)
    parser.add_argument('--preset', default='quick')
    parser.add_argument('--fill', default='{}', help='Fill overrides as a YAML mapping, e.g. "{lr: 3.0e-3}".')
    parser.add_argument('--checks', default='75,100', help='Step counts at which the ensemble is scored.')
    parser.add_argument('--passes', default='', help='Forward-only pass counts added at each check.')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    import yaml
    checks, passes = _ints(args.checks), _ints(args.passes)
    if not checks or checks[0] < 1:
        raise SystemExit('error: --checks: give step counts >= 1, e.g. 75,100')
    fill = {**(yaml.safe_load(args.fill) or {}), 'progress': False, 'iterations': checks[-1], 'by_area': None}
    den = MPIDenoiser.from_pretrained(args.preset, args.weights, fill=fill, device='cpu')
    f = den.filler
    x, gt = (torch.from_numpy(np.load(osp.join(args.set, kind, args.image + '.npy'))).permute(2, 0, 1)[None].float()
             for kind in ('noisy', 'gt'))
    xp, (h, w) = pad_to_multiple(x, f.pad_multiple, min_size=getattr(den.net, 'min_size', 0))
    rows, t0 = [], time.time()

    def check(t, net, xf, ybar, masks):
        if t + 1 not in checks:
            return
        row = {'steps': t + 1, 'psnr': psnr(ybar[..., :h, :w], gt), 'seconds': time.time() - t0, 'passes': {}}
        ens, pass_masks, pass_gen, done = ybar.clone(), copy.deepcopy(masks), torch.Generator().manual_seed(123), 0
        for p in passes:
            while done < p:
                f.forward_pass(net, xf, ens, pass_gen, masks=pass_masks)
                done += 1
            row['passes'][str(p)] = psnr(ens[..., :h, :w], gt)
        rows.append(row)
        print(f"{args.image} {t + 1} steps: {row['psnr']:.3f}" +
              ''.join(f' | +{p} passes {v:.3f}' for p, v in row['passes'].items()) + f" ({row['seconds']:.0f} s)",
              flush=True)

    f.fill_once(den.net, xp, torch.Generator().manual_seed(image_seed(args.seed, args.image)), after_step=check)
    if args.out:
        write_json_atomic({'image': args.image, 'weights': args.weights, 'preset': args.preset, 'fill': fill,
                           'rows': rows}, args.out)
    return rows


if __name__ == '__main__':
    main()
