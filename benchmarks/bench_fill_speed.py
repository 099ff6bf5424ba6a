"""Cost of one MPI filling iteration against a bare forward + backward + Adam step.

The "full" iteration is the real code path (:meth:`IterativeFiller.step` plus a live tqdm
bar writing to /dev/null); the "bare" step is the same network, input and Adam, with a
fixed precomputed mask and no ensemble. Both are interleaved in one process, ``--repeats``
rounds of ``--steps`` each, and the median of the per-round ratios is reported, so
contention from other processes largely cancels. Variants of the bare step
(channels_last, bf16 autocast, torch.compile) are timed the same way against the plain
bare step. A variant joins options with ``+``: ``channels_last``, ``bf16``, ``compile``, and ``torchmods``
(torch's own padding and upsampling modules instead of SkipNet's, which keep bf16 and channels-last in
the backward pass: :func:`~basicsr_denoise.archs.skip_arch.with_torch_modules`). Sizes are ``N`` or ``HxW``.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_fill_speed.py --sizes 128,256 --threads 2 --out results/speed.json
    # the default preset's precision with SkipNet's modules against torch's, up to a Kodak photo
    OMP_NUM_THREADS=1 python benchmarks/bench_fill_speed.py --sizes 128,256,512x768 --threads 1 \\
        --variants bf16+channels_last,bf16+channels_last+torchmods
"""

import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time

import torch

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.archs import build_network  # noqa: E402
from basicsr_denoise.mpi.fill_config import FillConfig  # noqa: E402
from basicsr_denoise.mpi.filling import IterativeFiller, masked_fill_loss  # noqa: E402
from basicsr_denoise.mpi.masking import MaskSampler  # noqa: E402

NET = {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel', 'backbone': {'type': 'SkipNet'}}


VARIANT_OPTIONS = ('channels_last', 'bf16', 'compile', 'torchmods')


def make_bare(net, x, keep, variant):
    """A closure running one bare step of ``variant`` ('plain' or options of :data:`VARIANT_OPTIONS` joined by '+')."""
    opts = set() if variant == 'plain' else set(variant.split('+'))
    unknown = opts - set(VARIANT_OPTIONS)
    if unknown:
        raise SystemExit(f'error: --variants: unknown option {sorted(unknown)[0]!r} '
                         f"(known: {', '.join(VARIANT_OPTIONS)})")
    if 'torchmods' in opts:
        from basicsr_denoise.archs.skip_arch import with_torch_modules
        net = with_torch_modules(net)
    if 'channels_last' in opts:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        keep = keep.contiguous(memory_format=torch.channels_last)
    fwd = torch.compile(net) if 'compile' in opts else net
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)

    def step():
        if 'bf16' in opts:
            with torch.autocast('cpu', dtype=torch.bfloat16):
                pred = fwd(x, keep)
        else:
            pred = fwd(x, keep)
        loss = masked_fill_loss(pred.float(), x, keep)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def make_full(net, x):
    """A closure running one real filling iteration (mask, step, ensemble, progress bar)."""
    from tqdm import tqdm
    filler = IterativeFiller(MaskSampler((30, 30)), FillConfig(iterations=10**9, progress=False))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    ybar = x.clone()
    gen = torch.Generator().manual_seed(0)
    bar = tqdm(total=10**9, file=open(os.devnull, 'w'), mininterval=0.1)

    def step():
        filler.step(net, opt, x, ybar, gen)
        bar.update(1)

    return step


def timed(fn, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def bench_size(size, steps, repeats, variants):
    """Interleaved timing of one size (``N`` or ``HxW``)."""
    h, w = (int(v) for v in size.split('x')) if 'x' in str(size) else (int(size), int(size))
    torch.manual_seed(0)
    base = build_network(NET).train()
    x = torch.rand(1, 3, h, w)
    keep = (torch.rand(1, 3, h, w) >= 0.3).float()
    import copy
    fns = {'full': make_full(copy.deepcopy(base), x)}
    for v in ['plain'] + variants:
        fns[v] = make_bare(copy.deepcopy(base), x, keep, v)
    for fn in fns.values():  # warm-up (and compilation)
        for _ in range(3):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(timed(fn, steps))
    ratio = lambda k: statistics.median(a / b for a, b in zip(times[k], times['plain']))  # noqa: E731
    return {
        'size': size,
        'ms': {k: 1000 * statistics.median(v) for k, v in times.items()},
        'ratio_full_over_bare': ratio('full'),
        'ratio_variant_over_bare': {v: ratio(v) for v in variants},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='128,256')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--steps', type=int, default=10, help='Steps per timed round.')
    parser.add_argument('--repeats', type=int, default=5, help='Interleaved rounds.')
    parser.add_argument('--variants', default='channels_last,bf16,compile')
    parser.add_argument('--out', default=None, help='Write the results as JSON here.')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(',') if v]
    results = {'torch': torch.__version__, 'threads': args.threads, 'sizes': []}
    for size in args.sizes.split(','):
        r = bench_size(size, args.steps, args.repeats, variants)
        results['sizes'].append(r)
        print(f"{size}: bare {r['ms']['plain']:.1f} ms, full iteration {r['ms']['full']:.1f} ms, "
              f"ratio {r['ratio_full_over_bare']:.3f}; " +
              ', '.join(f'{v} {r["ms"][v]:.1f} ms ({r["ratio_variant_over_bare"][v]:.2f}x)' for v in variants),
              flush=True)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
