"""MPI zero-shot benchmark on the fixed float inputs of ``shared/bench`` (parity and ablation).

Runs the real user path, ``basicsr_denoise/test.py`` with ``options/test/MPI/test_MPI_bench_*.yml``,
once per (set, preset, weights, mask seed), then writes a Markdown table and a JSON file
with the mean and standard deviation of PSNR/SSIM over the mask seeds.

Examples::

    # parity with the authors' weights (issue: within 0.10 dB of shared/bench/README.md)
    python benchmarks/mpi_bench.py --bench ../shared/bench --sets Z1 --presets fast,full --seeds 0,1 \\
        --weights authors=../shared/reference/mpi_official/imgnet_30_multchannel_skip.pth --out results/parity
    # ablation: our checkpoint, random initialisation and the authors' weights in one run
    python benchmarks/mpi_bench.py --bench ../shared/bench --sets Z1 --presets fast,full --seeds 0,1 \\
        --weights ours=experiments/pretrained_models/MPI_syn_ours.pth random= authors=... --out results/ablation

    # a schedule against the authors' fast preset, interleaved, with seconds per image and time ratios
    python benchmarks/mpi_bench.py --bench ../shared/bench --sets Z1 --presets fast,lean --seeds 0,1 \\
        --variant 'lean=fill.iterations=100;fill.autocast=bf16;fill.channels_last=true' \\
        --weights authors=... ours=MPI_syn_ours.pth --reference fast/authors --out results/schedule

Each run's own ``metrics.json`` stays under ``<out>/runs/``; the summary is ``<out>/summary.{md,json}``
(PSNR mean and std over the mask seeds, seconds per image, and its ratio to ``--reference``), and
``<out>/frontier_<set>.png`` plots PSNR against that ratio, one colour per weights. The runs go
seed by seed, so the presets are interleaved in time. Set ``OMP_NUM_THREADS`` to control the threads.
"""

import argparse
import json
import os
import os.path as osp
import sys

import numpy as np

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.utils.atomic import atomic_write_json  # noqa: E402
from basicsr_denoise.test import test_pipeline  # noqa: E402

REPO = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
SETS = {'Z1': 'Z1_CBSD68_s25_128', 'Z2': 'Z2_CBSD68_s25_256'}
PRESETS = {'fast': '_fast', 'full': '', 'quick': '_quick'}


def run_one(bench, set_key, preset, weights, seed, out, extra):
    """One test.py run; returns its metrics dict for the set. ``preset`` is ``(name, option-file suffix,
    overrides)``: a named preset of :data:`PRESETS` or a ``--variant`` (the fast option file plus overrides)."""
    folder = osp.join(bench, SETS.get(set_key, set_key))
    label, suffix, overrides = preset
    name = f'{set_key}_{label}_{weights[0]}_s{seed}'
    opt = osp.join(REPO, 'options', 'test', 'MPI', f"test_MPI_bench_{'Z2' if set_key == 'Z2' else 'Z1'}{suffix}.yml")
    overrides = [f'name={name}', f'datasets.test_1.name={SETS.get(set_key, set_key)}',
                 f'datasets.test_1.dataroot_gt={folder}/gt',
                 f'datasets.test_1.dataroot_lq={folder}/noisy', f'fill.seed={seed}', 'fill.progress=false',
                 f'path.pretrain_network_g={weights[1] or "~"}', 'val.save_img=false', *extra, *overrides]
    res = test_pipeline(root_path=out, argv=['-opt', opt, '--force_yml', *overrides])
    return next(iter(res.values()))


def parse_variants(specs):
    """``NAME=KEY=VALUE;KEY=VALUE...`` -> ``{NAME: [KEY=VALUE, ...]}`` (``--force_yml`` overrides of the fast
    preset)."""
    out = {}
    for spec in specs:
        if '=' not in spec:
            raise SystemExit(f'error: --variant {spec!r}: expected NAME=KEY=VALUE[;KEY=VALUE...]')
        name, rest = spec.split('=', 1)
        if name in PRESETS or not name or '/' in name:
            raise SystemExit(f'error: --variant {spec!r}: the name must be new and have no "/"')
        out[name] = [kv.strip() for kv in rest.split(';') if kv.strip()]
    return out


def table(rows, reference):
    """Markdown summary; ``s/image ratio`` divides by the ``reference`` row (``PRESET/LABEL``) of the same set."""
    lines = ['| set | preset | weights | seeds | PSNR mean | PSNR std | SSIM | s/image | time ratio |',
             '|---|---|---|---|---|---|---|---|---|']
    for key, r in rows.items():
        s, p, w = key.split('/')
        ref = rows.get(f'{s}/{reference}')
        ratio = f"{r['seconds_per_image'] / ref['seconds_per_image']:.3f}" if ref else '-'
        desc = {'fast': '200 it / beta 0.9', 'full': '1000 it / beta 0.99', 'quick': 'quick (75 it)'}.get(p, p)
        lines.append(f"| {SETS.get(s, s)} | {desc} | {w} | {','.join(sorted(r['runs']))} | {r['psnr_mean']:.3f} | "
                     f"{r['psnr_std']:.3f} | {r['ssim_mean']:.4f} | {r['seconds_per_image']:.1f} | {ratio} |")
    return '\n'.join(lines) + '\n'


def frontier(rows, out, reference):
    """``frontier_<set>.png``: PSNR against the time ratio to ``reference`` (log scale), one colour per weights,
    one labelled point per preset. Returns the files written."""
    from basicsr_denoise.utils.plot import line_plot
    paths = []
    for set_key in dict.fromkeys(k.split('/')[0] for k in rows):
        ref = rows.get(f'{set_key}/{reference}')
        if not ref:
            continue
        series = {}
        for key, r in rows.items():
            s, p, w = key.split('/')
            if s == set_key:
                series.setdefault(w, []).append((r['seconds_per_image'] / ref['seconds_per_image'], r['psnr_mean'], p))
        path = osp.join(out, f'frontier_{set_key}.png')
        line_plot({w: sorted(v) for w, v in series.items()}, path,
                  f'time / {reference} ({SETS.get(set_key, set_key)})', 'PSNR (dB)', logx=True, connect=False)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--bench', required=True, help='Folder holding Z1_CBSD68_s25_128/ and Z2_CBSD68_s25_256/.')
    parser.add_argument('--sets', default='Z1',
                        help='Comma list of Z1, Z2 or other folders under --bench holding gt/ and noisy/ '
                             '(make_inputs.py output, e.g. Z1 rebuilt at another sigma).')
    parser.add_argument('--presets', default='fast,full',
                        help='fast = 200 it/beta 0.9, full = 1000 it/beta 0.99, quick = the default preset, or names '
                             'given by --variant.')
    parser.add_argument('--variant', action='append', default=[], metavar='NAME=KEY=VALUE;...',
                        help="A schedule to compare: the fast option file with these overrides, e.g. "
                             "'lean=fill.iterations=100;fill.autocast=bf16'. Name it in --presets.")
    parser.add_argument('--seeds', default='0,1', help='Mask seeds (fill.seed).')
    parser.add_argument('--weights', nargs='+', required=True,
                        help='LABEL=PATH pairs; an empty PATH means random initialisation.')
    parser.add_argument('--reference', default=None,
                        help='PRESET/LABEL whose seconds per image the others are divided by (per set). '
                             'Default: fast/<first weights label>.')
    parser.add_argument('--skip', default='', help='Comma list of PRESET/LABEL pairs not to run (e.g. fast/ours when '
                                                   'only the reference needs the slow preset).')
    parser.add_argument('--out', default='results/mpi_bench', help='Output folder.')
    parser.add_argument('--force_yml', nargs='*', default=[], help='Extra overrides for every run.')
    args = parser.parse_args(argv)
    weights = [tuple(w.split('=', 1)) if '=' in w else (w, '') for w in args.weights]
    variants = parse_variants(args.variant)
    presets = []
    for p in args.presets.split(','):
        if p in PRESETS:
            presets.append((p, PRESETS[p], []))
        elif p in variants:
            presets.append((p, PRESETS['fast'], variants[p]))
        else:
            raise SystemExit(f'error: --presets: unknown preset {p!r} (fast, full, quick or a --variant name)')
    reference = args.reference or f'fast/{weights[0][0]}'
    skip = {s for s in args.skip.split(',') if s}
    for set_key in args.sets.split(','):
        folder = osp.join(args.bench, SETS.get(set_key, set_key))
        if '/' in set_key or not (osp.isdir(osp.join(folder, 'gt')) and osp.isdir(osp.join(folder, 'noisy'))):
            raise SystemExit(f'error: --sets: {set_key!r} is not a folder of --bench holding gt/ and noisy/ ({folder})')
    os.makedirs(args.out, exist_ok=True)
    summary_path = osp.join(args.out, 'summary.json')
    rows = json.load(open(summary_path)) if osp.exists(summary_path) else {}
    # seed-major order: every (set, preset, weights) runs once per round, so the variants are interleaved in
    # time and a load change on the machine touches them alike (the time ratios are what carries over)
    for seed in [int(s) for s in args.seeds.split(',')]:
        for set_key in args.sets.split(','):
            for preset in presets:
                for w in weights:
                    if f'{preset[0]}/{w[0]}' in skip:
                        continue
                    key = f'{set_key}/{preset[0]}/{w[0]}'  # set_key: no '/' (a folder name under --bench)
                    runs = rows.setdefault(key, {'runs': {}})['runs']
                    if preset[2]:
                        rows[key]['overrides'] = preset[2]
                    if str(seed) in runs:  # resumable: finished runs are kept
                        continue
                    res = run_one(args.bench, set_key, preset, w, seed, osp.join(args.out, 'runs'), args.force_yml)
                    runs[str(seed)] = {'psnr': res['mean']['psnr'], 'ssim': res['mean']['ssim'],
                                       'seconds_per_image': res['mean']['seconds'],
                                       'psnr_per_image': [r['psnr'] for r in res['images']],
                                       'seconds_per_image_list': [r['seconds'] for r in res['images']]}
                    psnrs = [r['psnr'] for r in runs.values()]
                    rows[key].update(psnr_mean=float(np.mean(psnrs)), psnr_std=float(np.std(psnrs)),
                                     ssim_mean=float(np.mean([r['ssim'] for r in runs.values()])),
                                     seconds_per_image=float(np.mean([r['seconds_per_image'] for r in runs.values()])),
                                     weights=w[1] or 'random init')
                    atomic_write_json(rows, summary_path)
    text = table(rows, reference)
    with open(osp.join(args.out, 'summary.md'), 'w') as f:
        f.write(text)
    frontier(rows, args.out, reference)
    print(text, end='')
    return rows


if __name__ == '__main__':
    main()
