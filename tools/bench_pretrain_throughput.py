"""Training throughput (images/s and iterations/s), data loading included.

For MPI masked pre-training (``pretrain_MPI_syn_imagenet.yml``, the default) or any other
training option file, e.g. Noise2Score (``-opt options/train/Noise2Score/train_N2S_gauss25.yml``).
Measures three numbers on the same options so the limit is visible:

- ``loader``: the data loader alone (decode, crop) with ``num_workers`` and ``prefetch``;
- ``compute``: training steps on a fixed in-memory batch (no loading);
- ``end_to_end``: the real loop, loader feeding ``MaskedPretrainModel.optimize_parameters``.

Usage::

    python tools/bench_pretrain_throughput.py --data datasets/train --batch 8 --workers 1 --steps 6
    python tools/bench_pretrain_throughput.py -opt options/train/Noise2Score/train_N2S_gauss25.yml \
        --data datasets/train --threads 2
"""

import argparse
import json
import os
import os.path as osp
import sys
import time

import torch

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.data import build_dataloader, build_dataset  # noqa: E402
from basicsr_denoise.data.sampler import EnlargedSampler  # noqa: E402
from basicsr_denoise.models import build_model  # noqa: E402
from basicsr_denoise.utils.options import parse_options  # noqa: E402

REPO = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-opt', default=osp.join(REPO, 'options', 'train', 'MPI', 'pretrain_MPI_syn_imagenet.yml'))
    parser.add_argument('--data', required=True, help='Image folder (searched recursively).')
    parser.add_argument('--size', type=int, default=None, help="Crop size (default: the option file's gt_size).")
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--workers', type=int, default=1)
    parser.add_argument('--prefetch', type=int, default=2)
    parser.add_argument('--steps', type=int, default=6, help='Timed steps (after 2 warm-up steps).')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ov = [f'datasets.train.dataroot_gt={args.data}', f'datasets.train.batch_size_per_gpu={args.batch}',
          f'datasets.train.num_worker_per_gpu={args.workers}', f'datasets.train.prefetch_factor={args.prefetch}',
          'logger.use_tb_logger=false']
    if args.size:
        ov.append(f'datasets.train.gt_size={args.size}')
    opt, _ = parse_options(True, ['-opt', args.opt, '--force_yml', *ov])
    opt['dist'], opt['rank'], opt['world_size'] = False, 0, 1
    opt['datasets'] = {'train': opt['datasets']['train']}  # no validation sets
    dopt = opt['datasets']['train']
    dataset = build_dataset(dopt, key='datasets.train')
    sampler = EnlargedSampler(len(dataset), 1, 0, 100, shuffle=True, seed=0)
    loader = build_dataloader(dataset, dopt, sampler=sampler, seed=0)
    n = args.steps
    it = iter(loader)
    for _ in range(2):
        next(it)
    t0 = time.perf_counter()
    for _ in range(n):
        batch = next(it)
    loader_ips = n * args.batch / (time.perf_counter() - t0)

    model = build_model(opt)
    model.feed_data(batch)
    for i in range(2):
        model.optimize_parameters(i + 1)
    t0 = time.perf_counter()
    for i in range(n):
        model.optimize_parameters(i + 3)
    compute_ips = n * args.batch / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    for i in range(n):
        model.feed_data(next(it))
        model.optimize_parameters(i + 3 + n)
    e2e_ips = n * args.batch / (time.perf_counter() - t0)
    size = dopt.get('gt_size')
    res = {'model': opt['model_type'], 'device': str(model.device), 'torch_threads': torch.get_num_threads(),
           'size': size,
           'batch': args.batch, 'workers': args.workers, 'prefetch': args.prefetch, 'images_per_s': {
               'loader': loader_ips, 'compute': compute_ips, 'end_to_end': e2e_ips},
           'iterations_per_s': e2e_ips / args.batch}
    limit = 'data loading' if loader_ips < compute_ips * 1.2 else 'network compute'
    res['limited_by'] = limit
    print(f"{res['model']}, {res['device']}, {res['torch_threads']} threads, {size}px, batch {args.batch}, workers "
          f"{args.workers}: loader {loader_ips:.1f} img/s, compute {compute_ips:.2f} img/s, end-to-end "
          f"{e2e_ips:.2f} img/s = {res['iterations_per_s']:.3f} it/s (limited by {limit})", flush=True)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == '__main__':
    main()
