"""Second-order meta-learning probe of MPI's starting weights: back-propagation through the whole zero-shot fill.

Each iteration takes one random ``--size`` crop of a training image, adds Gaussian noise (sigma uniform in
``--sigma``), and runs the preset ``quick``'s fill on it as a differentiable function of the starting weights:
``--steps`` Adam steps at lr 4e-3 on the masked loss (complementary 30 % masks per channel, BatchNorm in training
mode, float32), written functionally (``torch.func.functional_call``) so that every step keeps its graph, and the
running ensemble (beta 0.9, starting from the noisy crop). The meta loss is the final ensemble's MSE against the
clean crop; its gradient with respect to the *starting* weights (second order: through every step's gradient; the
second moment of the inner Adam is treated as a constant, the usual simplification) drives an outer Adam.

This is the MAML counterpart of :class:`~basicsr_denoise.models.meta_fill_model.MetaFillPretrainModel` (first
order). It is a probe, not a training pipeline: it keeps its own resumable state in ``--out`` and writes
``net_<iteration>.pth`` (``params``) every ``--save_every`` iterations, to be scored with ``tools/mpi_bench.py``.
Cost on this CPU, one thread, 128-px crops and 75 steps: about 57 s and 13-17 GB per iteration.

Example (issue #10; README, "Quality per second")::

    OMP_NUM_THREADS=1 python tools/meta_second_order.py --data datasets/train \\
        --weights experiments/pretrained_models/MPI_syn_ours.pth --out results/meta2 --iters 45 --lr 2e-4
    OMP_NUM_THREADS=1 python tools/mpi_bench.py --bench results/bench --sets D1_CBSD68_s25_128 --presets quick \\
        --seeds 0 --weights m45=results/meta2/net_45.pth --out results/meta2_bench
"""

import argparse
import json
import os
import os.path as osp
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.inference import load_network  # noqa: E402
from basicsr_denoise.mpi.filling import masked_fill_loss  # noqa: E402
from basicsr_denoise.mpi.masking import ComplementaryMasks, MaskSampler  # noqa: E402
from basicsr_denoise.utils.file_client import list_images  # noqa: E402
from basicsr_denoise.utils.img_util import imread  # noqa: E402

NETWORK = {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel', 'backbone': {'type': 'SkipNet'}}
ADAM = (0.9, 0.999, 1e-8)


def unrolled_fill(net, theta, buffers, x, generator, steps, lr=4e-3, beta=0.9):
    """The quick fill of ``x`` from the weights ``theta`` (a dict of tensors), differentiable in ``theta``.

    Returns:
        Tensor: The running ensemble after ``steps`` steps.
    """
    b1, b2, eps = ADAM
    params = dict(theta)
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}
    masks = ComplementaryMasks(MaskSampler((30, 30), 'multchannel', 1))
    ybar = x.clone()
    for t in range(steps):
        keep = masks.sample(x.shape, generator)[0]
        pred = functional_call(net, (params, buffers), (x, keep))
        loss = masked_fill_loss(pred, x, keep)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        ybar = ybar + (1 - keep) * (1 - beta) * (pred - ybar)  # the prediction made before the step
        new = {}
        for (n, p), g in zip(params.items(), grads):
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g.detach() ** 2
            new[n] = p - lr * (m[n] / (1 - b1 ** (t + 1))) / ((v[n] / (1 - b2 ** (t + 1))).sqrt() + eps)
        params = new
    return ybar


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', required=True, help='Folder of clean training images (searched recursively).')
    parser.add_argument('--weights', required=True, help='Starting checkpoint (params).')
    parser.add_argument('--out', required=True)
    parser.add_argument('--iters', type=int, default=45)
    parser.add_argument('--lr', type=float, default=2e-4, help='Outer Adam learning rate.')
    parser.add_argument('--steps', type=int, default=75, help='Fill steps (quick: 75).')
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--sigma', default='10,50', help='Noise level range (0-255).')
    parser.add_argument('--save_every', type=int, default=15)
    args = parser.parse_args(argv)
    lo, hi = (float(s) for s in args.sigma.split(','))
    images = [imread(osp.join(args.data, f)) for f in list_images(args.data, recursive=True, key='--data')]
    images = [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im[..., :3] for im in images]  # gray: replicated
    os.makedirs(args.out, exist_ok=True)
    net, _, _ = load_network(args.weights, NETWORK)
    net.train()
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_parameters()}
    # the fill's BatchNorm runs in training mode: its running statistics are updated on copies (and not saved)
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    opt = torch.optim.Adam(list(theta.values()), lr=args.lr)
    rng, gen, start = np.random.default_rng(1234), torch.Generator().manual_seed(4321), 0
    state_path = osp.join(args.out, 'state.pt')
    if osp.isfile(state_path):  # resume
        s = torch.load(state_path, weights_only=False)
        for n in theta:
            theta[n].data.copy_(s['theta'][n])
        opt.load_state_dict(s['opt'])
        rng.bit_generator.state, start = s['rng'], s['it']
        gen.set_state(s['gen'])
    with open(osp.join(args.out, 'log.jsonl'), 'a', encoding='utf-8') as log:
        for it in range(start, args.iters):
            t0 = time.time()
            im = images[rng.integers(len(images))]
            i, j = rng.integers(im.shape[0] - args.size + 1), rng.integers(im.shape[1] - args.size + 1)
            clean = torch.from_numpy(np.ascontiguousarray(im[i:i + args.size, j:j + args.size]))
            clean = clean.permute(2, 0, 1)[None].float()
            sigma = float(rng.uniform(lo, hi))
            x = clean + torch.randn(clean.shape, generator=gen) * sigma / 255
            meta = F.mse_loss(unrolled_fill(net, theta, buffers, x, gen, args.steps), clean)
            opt.zero_grad()
            meta.backward()
            opt.step()
            rec = {'it': it + 1, 'sigma': round(sigma, 1), 'psnr': round(float(-10 * torch.log10(meta.detach())), 3),
                   'seconds': round(time.time() - t0, 1)}
            log.write(json.dumps(rec) + '\n')
            log.flush()
            print(json.dumps(rec), flush=True)
            if (it + 1) % args.save_every == 0 or it + 1 == args.iters:
                sd = net.state_dict()
                sd.update({n: p.detach().clone() for n, p in theta.items()})
                torch.save({'params': sd}, osp.join(args.out, f'net_{it + 1}.pth'))
                torch.save({'theta': {n: p.detach() for n, p in theta.items()}, 'opt': opt.state_dict(),
                            'rng': rng.bit_generator.state, 'gen': gen.get_state(), 'it': it + 1}, state_path + '.tmp')
                os.replace(state_path + '.tmp', state_path)


if __name__ == '__main__':
    main()
