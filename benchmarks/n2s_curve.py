"""PSNR against training iterations for the checkpoints of a Noise2Score (or any) experiment.

Evaluates every ``<exp>/models/net_g_<iter>.pth`` on the test sets of a test option file and
writes ``<out>/n2s_curve.csv`` (one row per checkpoint and test set, all mean metrics and the
mean blind level estimate when there is one) and ``<out>/n2s_curve.png`` (PSNR against
iterations, one line per test set; matplotlib when importable, otherwise drawn with OpenCV).

Usage::

    python benchmarks/n2s_curve.py experiments/N2S_gauss25_color \\
        -opt options/test/Noise2Score/test_N2S_gauss25.yml --max-images 10

``--max-images`` evaluates only the first images of each set (quick curves); ``--force_yml``
overrides options as in ``test.py`` (e.g. ``num_gpu=0``); ``--param-key params_ema`` reads EMA weights.
"""

import argparse
import csv
import glob
import os
import os.path as osp
import re
import sys


sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

from basicsr_denoise.utils.errors import OptionError, exit_on_user_error  # noqa: E402


def list_checkpoints(exp_dir):
    """``[(iteration, path)]`` of ``<exp_dir>/models/net_g_<int>.pth``, sorted by iteration."""
    found = []
    for path in glob.glob(osp.join(exp_dir, 'models', 'net_g_*.pth')):
        m = re.fullmatch(r'net_g_(\d+)\.pth', osp.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def evaluate(exp_dir, opt_path, max_images=None, force_yml=None, param_key='params', metric='psnr'):
    """Evaluate every checkpoint of ``exp_dir`` on the test sets of ``opt_path``.

    Args:
        exp_dir (str): Experiment folder holding ``models/net_g_<iter>.pth``.
        opt_path (str): A test option file (its ``network_g``, ``score``, datasets and metrics are used).
        max_images (int | None): Evaluate only the first images of each set. Default: None (all).
        force_yml (list[str] | None): ``KEY=VALUE`` overrides. Default: None.
        param_key (str): ``params`` or ``params_ema``. Default: ``'params'``.
        metric (str): Metric plotted (must be in ``val.metrics``). Default: ``'psnr'``.

    Returns:
        list[dict]: One row per (checkpoint, test set): ``iter``, ``dataset``, ``images`` and the mean values.
    """
    import torch
    from torch.utils.data import Subset

    from basicsr_denoise.data import build_dataloader, build_dataset
    from basicsr_denoise.models import build_model
    from basicsr_denoise.utils.options import parse_options

    ckpts = list_checkpoints(exp_dir)
    if not ckpts:
        raise OptionError(f'{exp_dir}: no models/net_g_<iter>.pth checkpoints')
    argv = ['-opt', opt_path, '--force_yml', 'path.pretrain_network_g=~', 'val.save_img=false',
            'val.pbar=false'] + list(force_yml or [])
    opt, _ = parse_options(is_train=False, argv=argv)
    opt['dist'], opt['rank'], opt['world_size'] = False, 0, 1
    if metric not in (opt['val'].get('metrics') or {}):
        raise OptionError(f"{opt_path}: val.metrics has no '{metric}' entry")
    loaders = []
    for phase in sorted(p for p in opt['datasets'] if p.startswith('test') or p.startswith('val')):
        dopt = opt['datasets'][phase]
        dataset = build_dataset(dopt, key=f'datasets.{phase}', source=opt['opt_path'])
        if max_images:
            dataset = Subset(dataset, range(min(int(max_images), len(dataset))))
        loaders.append((dopt.get('name', phase), build_dataloader(dataset, dopt)))
    model = build_model(opt)
    rows = []
    for it, path in ckpts:
        model.load_network(model.net_g, path, strict=opt['path'].get('strict_load_g', True), param_key=param_key)
        for name, loader in loaders:
            torch.manual_seed(opt['manual_seed'])
            res = model.validation(loader, current_iter=it, save_img=False, dataset_name=name)
            row = {'iter': it, 'dataset': name, 'images': res['count']}
            row.update({k: v for k, v in res['mean'].items() if k != 'seconds'})
            rows.append(row)
            print(f"iter {it:>8d}  {name}: {metric} {row.get(metric, float('nan')):.4f}", flush=True)
    return rows


def write_csv(rows, path):
    """Write ``rows`` (dicts) as CSV with the union of their keys (``iter``, ``dataset`` first)."""
    keys = ['iter', 'dataset']
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, 'w', newline='', encoding='utf-8') as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def _series(rows, metric):
    series = {}
    for r in rows:
        if metric in r:
            series.setdefault(r['dataset'], []).append((r['iter'], r[metric]))
    return {k: sorted(v) for k, v in series.items()}


def plot_cv2(rows, path, metric='psnr', size=(640, 420)):
    """Draw ``metric`` against iterations with OpenCV (no matplotlib needed)."""
    from basicsr_denoise.utils.plot import line_plot
    line_plot(_series(rows, metric), path, 'iteration', metric, size=size)


def plot(rows, path, metric='psnr'):
    """Plot with matplotlib when it is importable, else with :func:`plot_cv2`. Returns the back-end used."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        plot_cv2(rows, path, metric)
        return 'cv2'
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, pts in _series(rows, metric).items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='o', label=name)
    ax.set_xlabel('iteration')
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return 'matplotlib'


def main(argv=None):
    parser = argparse.ArgumentParser(description='PSNR against training iterations of an experiment.')
    parser.add_argument('exp_dir', help='Experiment folder with models/net_g_<iter>.pth.')
    parser.add_argument('-opt', '--opt', required=True, help='Test option file (datasets, network, metrics).')
    parser.add_argument('--max-images', type=int, default=None, help='Evaluate only the first N images per set.')
    parser.add_argument('--out', default=None, help='Output folder (default: the experiment folder).')
    parser.add_argument('--metric', default='psnr', help='Metric to plot (default: psnr).')
    parser.add_argument('--param-key', default='params', choices=['params', 'params_ema'])
    parser.add_argument('--force_yml', nargs='+', default=None, metavar='KEY=VALUE', help='Option overrides.')
    args = parser.parse_args(argv)
    rows = exit_on_user_error(evaluate, args.exp_dir, args.opt, args.max_images, args.force_yml, args.param_key,
                              args.metric)
    out = args.out or args.exp_dir
    os.makedirs(out, exist_ok=True)
    csv_path, png_path = osp.join(out, 'n2s_curve.csv'), osp.join(out, 'n2s_curve.png')
    write_csv(rows, csv_path)
    backend = plot(rows, png_path, args.metric)
    print(f'wrote {csv_path} and {png_path} ({backend})')
    return rows


if __name__ == '__main__':
    main()
