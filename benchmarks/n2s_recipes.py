"""Noise2Score training recipes compared at equal training time (AR-DAE estimators, lr, data, precision).

Every variant is a list of ``--force_yml`` overrides of one training option file. All variants
train from the same initialisation, data order and seed, **interleaved in one process**: the
variant that has used the least training time so far takes the next step. Training time is the
process's CPU time (``time.process_time``: data loading included, validation excluded), so the
load of the machine changes how long the comparison takes, not how many steps each variant gets:
``--minutes`` is what each variant would get in that many minutes of a quiet machine. The PSNR of the
Tweedie estimate is measured on a fixed subset of the validation set (the first ``--val-images`` of
``datasets.val_1``, noise seed 0) at every quarter of the budget.

A variant's ``sigma_a`` ramp and lr schedule follow its **training time**, not its step count: the
iteration passed to the loss and the schedulers is the elapsed fraction of the budget times the
variant's planned iteration count (estimated from ``--probe`` timed steps), so every ramp ends with
the budget however much the machine's load changes the step time.

With ``--iterations N`` every variant takes N steps instead (equal work, e.g. the PSNR effect of
bf16 at a fixed short run).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/n2s_recipes.py --minutes 12 \\
        --variants paper,paper_per_epoch,anti,anti_lr4e-4,anti_lr1e-3,anti_b4 --out results/n2s_estimators
    OMP_NUM_THREADS=1 python benchmarks/n2s_recipes.py --iterations 200 --variants anti_lr1e-3_fp32,anti_lr1e-3 \\
        --out results/n2s_precision

Writes ``<out>/estimators.json`` (every curve point) and ``<out>/estimators.md`` (the table).
"""

import argparse
import json
import os
import os.path as osp
import shlex
import sys
import time

import numpy as np
import torch

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.data import build_dataloader, build_dataset  # noqa: E402
from basicsr_denoise.models import build_model  # noqa: E402
from basicsr_denoise.utils.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from basicsr_denoise.utils.errors import OptionError, exit_on_user_error  # noqa: E402
from basicsr_denoise.utils.misc import get_rng_state, set_random_seed, set_rng_state  # noqa: E402
from basicsr_denoise.utils.options import parse_options  # noqa: E402
from benchmarks._common import psnr, write_doc_block  # noqa: E402

REPO = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
DEFAULT_OPT = osp.join(REPO, 'options', 'train', 'Noise2Score', 'train_N2S_gauss25.yml')

_PAPER = ['train.optim_g.lr=2e-4', 'train.optim_g.betas=[0.5,0.999]']
_ANTI = ['train.score_opt.estimator=antithetic', 'train.score_opt.sigma_max=0.01', 'train.score_opt.sigma_min=0.01']
_FAST = ['train.autocast=bf16', 'train.channels_last=true']
_LR4 = ['train.optim_g.lr=4e-4', 'train.optim_g.betas=[0.9,0.999]']
_LR1 = ['train.optim_g.lr=1e-3', 'train.optim_g.betas=[0.9,0.999]']
_D512 = 'datasets.train.dataroot_gt=[datasets/train/CBSD432,datasets/train/Sun_Hays80]'
_DALL = 'datasets.train.dataroot_gt=datasets/train'
_COS = 'train.scheduler={type: CosineAnnealingLR, eta_min: 1.0e-6}'
#: Built-in variants: name -> (description, overrides). ``{N}`` is replaced by the variant's
#: estimated iteration count.
VARIANTS = {
    'paper': ('plain AR-DAE, sigma_a 0.05->0.001, Adam 2e-4 b1 0.5, fp32',
              ['train.score_opt.estimator=plain', 'train.score_opt.sigma_max=0.05',
               'train.score_opt.sigma_min=0.001', *_PAPER]),
    'paper_per_epoch': ('as paper, ramp restarted every epoch (authors\' code), fp32',
                        ['train.score_opt.estimator=plain', 'train.score_opt.sigma_max=0.05',
                         'train.score_opt.sigma_min=0.001', 'train.score_opt.anneal=per_epoch',
                         'train.score_opt.iters_per_epoch=64', *_PAPER]),
    'paper_bf16': ('as paper, bf16 + channels_last',
                   ['train.score_opt.estimator=plain', 'train.score_opt.sigma_max=0.05',
                    'train.score_opt.sigma_min=0.001', *_PAPER, *_FAST]),
    'anti_fp32': ('antithetic, sigma_a 0.01, Adam 2e-4 b1 0.5, fp32', [*_ANTI, *_PAPER]),
    'anti': ('antithetic, sigma_a 0.01, Adam 2e-4 b1 0.5, bf16 + channels_last', [*_ANTI, *_PAPER, *_FAST]),
    'anti_lr4e-4': ('antithetic, sigma_a 0.01, Adam 4e-4 b1 0.9, bf16 + channels_last',
                    [*_ANTI, 'train.optim_g.lr=4e-4', 'train.optim_g.betas=[0.9,0.999]', *_FAST]),
    'anti_lr1e-3': ('antithetic, sigma_a 0.01, Adam 1e-3 b1 0.9, bf16 + channels_last',
                    [*_ANTI, 'train.optim_g.lr=1e-3', 'train.optim_g.betas=[0.9,0.999]', *_FAST]),
    'anti_lr1e-3_fp32': ('antithetic, sigma_a 0.01, Adam 1e-3 b1 0.9, fp32',
                         [*_ANTI, 'train.optim_g.lr=1e-3', 'train.optim_g.betas=[0.9,0.999]']),
    'anti_anneal': ('antithetic, sigma_a 0.05->0.01, Adam 4e-4 b1 0.9, bf16 + channels_last',
                    ['train.score_opt.estimator=antithetic', 'train.score_opt.sigma_max=0.05',
                     'train.score_opt.sigma_min=0.01', 'train.optim_g.lr=4e-4', 'train.optim_g.betas=[0.9,0.999]',
                     *_FAST]),
    'anti_b4': ('antithetic, batch 4 (8 forwards/step), sigma_a 0.01, Adam 4e-4 b1 0.9, bf16 + channels_last',
                [*_ANTI, 'datasets.train.batch_size_per_gpu=4', 'train.optim_g.lr=4e-4',
                 'train.optim_g.betas=[0.9,0.999]', *_FAST]),
    # Recipe candidates for the long runs (all antithetic, sigma_a 0.01, bf16 + channels_last, batch 8 x 128 px).
    'ship': ('the shipped colour recipe: Adam 4e-4 b1 0.9, 512 images', [*_ANTI, *_LR4, _D512, *_FAST]),
    'lr1e-3_512': ('Adam 1e-3 b1 0.9, 512 images', [*_ANTI, *_LR1, _D512, *_FAST]),
    'lr1e-3_all': ('Adam 1e-3 b1 0.9, 1,395 images (+ ImageNet_sample)', [*_ANTI, *_LR1, _DALL, *_FAST]),
    'lr1e-3_all_ema': ('as lr1e-3_all, EMA 0.999 of the weights', [*_ANTI, *_LR1, _DALL, *_FAST,
                                                                 'train.ema_decay=0.999']),
    'lr1e-3_all_cos': ('as lr1e-3_all, cosine decay to 1e-6 over the budget, EMA 0.999',
                       [*_ANTI, *_LR1, _DALL, *_FAST, 'train.ema_decay=0.999', _COS]),
    'lr1e-3_all_crop192': ('as lr1e-3_all, 192-px crops', [*_ANTI, *_LR1, _DALL, *_FAST,
                                                          'datasets.train.gt_size=192']),
}


def build_variant(opt_path, overrides, total_iter, data, val_images, val_root=None):
    """``(model, train_loader, val_batches)`` for one variant with ``total_iter`` iterations."""
    ov = [*overrides, f'train.total_iter={total_iter}', 'logger.use_tb_logger=false',
          'datasets.train.num_worker_per_gpu=0', 'train.scheduler.milestones=[1000000000]']
    if any(o.startswith('train.scheduler=') for o in overrides):
        ov.remove('train.scheduler.milestones=[1000000000]')
    if data:
        ov.append(f'datasets.train.dataroot_gt={data}')
    if val_root:
        ov.append(f'datasets.val_1.dataroot_gt={val_root}')
    opt, _ = parse_options(True, ['-opt', opt_path, '--force_yml', *ov])
    opt['dist'], opt['rank'], opt['world_size'] = False, 0, 1
    set_random_seed(opt['manual_seed'])
    model = build_model(opt)
    dopt = opt['datasets']['train']
    loader = build_dataloader(build_dataset(dopt, key='datasets.train'), dopt, num_gpu=0, dist=False,
                              sampler=None, seed=opt['manual_seed'])
    vopt = opt['datasets'].get('val_1')
    if val_images <= 0:  # a timing probe: no validation set needed
        return model, loader, []
    if vopt is None:
        raise OptionError(f'{opt_path}: datasets.val_1: required (the PSNR subset)')
    vset = build_dataset(vopt, key='datasets.val_1')
    val = [vset[i] for i in range(min(val_images, len(vset)))]
    return model, loader, val


def evaluate(model, val):
    """Mean float PSNR of the Tweedie estimate over ``val`` (list of dataset items)."""
    psnrs = []
    for item in val:
        model.feed_data({'lq': item['lq'][None], 'gt': item['gt'][None]})
        model.test()
        psnrs.append(psnr(model.output, model.gt))
    return float(np.mean(psnrs))


class Runner:
    """One variant: its model, data iterator, RNG state and clock."""

    def __init__(self, name, model, loader, val):
        self.name, self.model, self.loader, self.val = name, model, loader, val
        self.it = iter(loader)
        self.iter = 0
        self.seconds = 0.0
        self.rng = get_rng_state()
        self.curve = []

    def step(self, frac):
        """One training step; ``frac`` is the fraction of the budget used so far."""
        set_rng_state(self.rng)
        virtual = max(1, min(self.planned, round(frac * self.planned) + 1))
        t = time.process_time()
        try:
            batch = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            batch = next(self.it)
        self.iter += 1
        self.model.update_learning_rate(virtual)
        self.model.feed_data(batch)
        self.model.optimize_parameters(virtual)
        self.seconds += time.process_time() - t
        self.rng = get_rng_state()


def probe_step_time(opt_path, overrides, data, steps):
    """Seconds per training step of a variant (median of ``steps`` after one warm-up step)."""
    model, loader, _ = build_variant(opt_path, overrides, 1000, data, 0)
    times = []
    for i in range(steps + 1):
        batch = next(iter(loader))
        t = time.process_time()
        model.feed_data(batch)
        model.optimize_parameters(i + 1)
        times.append(time.process_time() - t)
    return float(np.median(times[1:]))


def markdown(results, minutes, iterations=None):
    quarters = [f'{iterations * q // 4} it' if iterations else f'{minutes * q / 4:g} min' for q in range(1, 5)]
    lines = ['| variant | recipe | s/step | iterations | ' + ' | '.join(quarters) + ' |',
             '| --- | --- | --- | --- | ' + ' | '.join('---' for _ in quarters) + ' |']
    for r in results:
        pts = ' | '.join([f"{p['psnr']:.2f}" for p in r['curve']] + ['-'] * (4 - len(r['curve'])))
        lines.append(f"| `{r['name']}` | {r['description']} | {r['s_per_step']:.2f} | {r['iterations']} | {pts} |")
    return '\n'.join(lines) + '\n'


def write_results(runners, args):
    """Write ``estimators.json`` and ``estimators.md`` atomically; return ``(results, table)``."""
    results = [{'name': r.name, 'description': r.description, 'iterations': r.iter,
                's_per_step': r.seconds / max(r.iter, 1), 'curve': r.curve} for r in runners]
    os.makedirs(args.out, exist_ok=True)
    meta = {'minutes': None if args.iterations else args.minutes, 'iterations': args.iterations,
            'val_images': args.val_images, 'opt': args.opt, 'command': args.command, 'results': results}
    table = markdown(results, args.minutes, args.iterations)
    atomic_write_json(meta, osp.join(args.out, 'estimators.json'))
    atomic_write_text(osp.join(args.out, 'estimators.md'), table)
    return results, table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-opt', default=DEFAULT_OPT, help='Base training option file.')
    parser.add_argument('--variants', default='paper,anti', help=f"Comma list of: {', '.join(VARIANTS)}.")
    parser.add_argument('--minutes', type=float, default=10.0, help='Training minutes per variant.')
    parser.add_argument('--iterations', type=int, default=None,
                        help='Equal iterations instead of equal time: each variant takes this many steps.')
    parser.add_argument('--val-images', type=int, default=8, help='First N images of datasets.val_1.')
    parser.add_argument('--data', default=None, help='Override datasets.train.dataroot_gt.')
    parser.add_argument('--val', default=None, help='Override datasets.val_1.dataroot_gt (default: CBSD68).')
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE',
                        help='Extra --force_yml overrides applied to every variant (before its own).')
    parser.add_argument('--probe', type=int, default=3, help='Timed steps to size each schedule.')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default=osp.join('results', 'n2s_recipes'))
    parser.add_argument('--doc', metavar='NAME', default=None,
                        help='Also write the table as block NAME of docs/benchmarks.md (e.g. n2s-recipes).')
    parser.add_argument('--render', action='store_true',
                        help='Train nothing: write the table (and --doc) again from <out>/estimators.json.')
    args = parser.parse_args(argv)
    args.command = 'python benchmarks/n2s_recipes.py ' + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.render:
        meta = json.load(open(osp.join(args.out, 'estimators.json'), encoding='utf-8'))
        table = markdown(meta['results'], meta['minutes'], meta['iterations'])
        if args.doc:
            write_doc(args.doc, meta.get('command') or args.command, meta, table)
        print(table)
        return meta['results']
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [v for v in args.variants.split(',') if v]
    for n in names:
        if n not in VARIANTS:
            raise OptionError(f"--variants: unknown variant '{n}' (known: {', '.join(VARIANTS)})")
    budget = args.minutes * 60

    def progress(r):  # fraction of the budget a runner has used: its training time, or its steps
        return r.iter / args.iterations if args.iterations else r.seconds / budget

    runners = []
    for n in names:
        desc, ov = VARIANTS[n]
        ov = [*args.set, *ov]
        total = args.iterations or max(int(budget / probe_step_time(args.opt, ov, args.data, args.probe)), 8)
        model, loader, val = build_variant(args.opt, ov, total, args.data, args.val_images, args.val)
        r = Runner(n, model, loader, val)
        r.description, r.planned = desc, total
        runners.append(r)
        print(f'{n}: {total} iterations ({desc})', flush=True)
    while True:
        active = [r for r in runners if progress(r) < 1]
        if not active:
            break
        r = min(active, key=progress)
        r.step(progress(r))
        while len(r.curve) < 4 and progress(r) >= (len(r.curve) + 1) / 4 - 1e-9:
            rng = get_rng_state()
            psnr = evaluate(r.model, r.val)
            set_rng_state(rng)
            r.curve.append({'minutes': r.seconds / 60, 'iter': r.iter, 'psnr': psnr})
            print(f'{r.name}: {r.seconds / 60:.1f} min, iter {r.iter}, PSNR {psnr:.2f}', flush=True)
            write_results(runners, args)  # after every point: a killed run keeps its curves
    results, table = write_results(runners, args)
    if args.doc:
        write_doc(args.doc, args.command, {'minutes': args.minutes, 'iterations': args.iterations,
                                           'val_images': args.val_images}, table)
    print(table)
    return results


def write_doc(name, command, meta, table):
    """Block ``name`` of docs/benchmarks.md: what was compared, the command and the table."""
    budget = (f"{meta['iterations']} iterations" if meta.get('iterations')
              else f"{meta['minutes']:g} minutes of CPU time")
    write_doc_block(name, f"""Noise2Score recipes at equal training ({budget} per variant, one thread,
interleaved in one process); PSNR (dB) of the Tweedie estimate on the first {meta['val_images']} CBSD68 images
(sigma 25, noise seed 0) at each quarter of the budget.

```bash
{command}
```

{table}""")


if __name__ == '__main__':
    exit_on_user_error(main)
