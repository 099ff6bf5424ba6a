"""Training throughput (images/s and iterations/s), data loading included.

For MPI masked pre-training (``pretrain_MPI_syn_imagenet.yml``, the default) or any other
training option file, e.g. Noise2Score (``-opt options/train/Noise2Score/train_N2S_gauss25.yml``).
Measures three numbers on the same options so the limit is visible:

- ``loader``: the data loader alone (decode, crop) with ``num_workers`` and ``prefetch``;
- ``compute``: training steps on a fixed in-memory batch (no loading);
- ``end_to_end``: the real loop, loader feeding ``MaskedPretrainModel.optimize_parameters``.

With ``--precision fp32,bf16,channels_last,bf16+channels_last`` it instead times one training step
of each precision setting (``train.autocast``, ``train.channels_last``) on the same in-memory batch,
**interleaved** round by round so that machine load hits every setting alike, and reports each
median step time as a ratio to the first setting.

Usage::

    python benchmarks/bench_pretrain_throughput.py --data datasets/train --batch 8 --workers 1 --steps 6
    python benchmarks/bench_pretrain_throughput.py -opt options/train/Noise2Score/train_N2S_gauss25.yml \
        --data datasets/train --threads 2
    python benchmarks/bench_pretrain_throughput.py -opt options/train/Noise2Score/train_N2S_gauss25_anti.yml \
        --data datasets/train --threads 1 --precision fp32,bf16,channels_last,bf16+channels_last --steps 8
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


PRECISION = {'fp32': {'autocast': 'fp32', 'channels_last': False},
             'bf16': {'autocast': 'bf16', 'channels_last': False},
             'channels_last': {'autocast': 'fp32', 'channels_last': True},
             'bf16+channels_last': {'autocast': 'bf16', 'channels_last': True}}


def compare_precision(opt, dataset, batch, names, rounds):
    """Median seconds per training step of each precision setting, timed round-robin on one batch."""
    import copy
    import statistics
    unknown = [n for n in names if n not in PRECISION]
    if unknown:
        raise SystemExit(f"error: --precision: unknown setting '{unknown[0]}' (known: {', '.join(PRECISION)})")
    items = [dataset[i % len(dataset)] for i in range(batch)]
    data = {k: torch.stack([it[k] for it in items]) for k in items[0] if torch.is_tensor(items[0][k])}
    models = {}
    for n in names:
        o = copy.deepcopy(opt)
        o['train'].update(PRECISION[n])
        torch.manual_seed(0)
        models[n] = build_model(o)
        models[n].feed_data(data)
        models[n].optimize_parameters(1)  # warm-up
    times = {n: [] for n in names}
    for r in range(rounds):
        for n in names:
            t0 = time.perf_counter()
            models[n].optimize_parameters(r + 2)
            times[n].append(time.perf_counter() - t0)
    med = {n: statistics.median(v) for n, v in times.items()}
    res = {'model': opt['model_type'], 'torch_threads': torch.get_num_threads(), 'batch': batch, 'rounds': rounds,
           'seconds_per_step': med, 'ratio_to_first': {n: med[n] / med[names[0]] for n in names}}
    for n in names:
        print(f'{n:>20}: {med[n]:.3f} s/step, x{res["ratio_to_first"][n]:.2f} of {names[0]}', flush=True)
    return res


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
    parser.add_argument('--precision', default=None,
                        help='Comma list of fp32, bf16, channels_last, bf16+channels_last: interleaved step-time '
                             'ratios instead of the throughput breakdown.')
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
    if args.precision:
        res = compare_precision(opt, dataset, args.batch, args.precision.split(','), args.steps)
        if args.out:
            os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
            with open(args.out, 'w') as f:
                json.dump(res, f, indent=2)
        return res
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
