"""Test entry point: ``python basicsr_denoise/test.py -opt options/test/...yml``.

Runs the model on every ``datasets.test_*`` (and ``val_*``) set, saves the outputs
under ``results/<name>/visualization/<dataset>/``, writes per-image and mean
metrics to ``results/<name>/metrics.json`` and prints a summary table. Images
without a ground truth are processed and saved, with no metrics.

Sharded over processes (gloo on CPU, nccl with one GPU per rank)::

    torchrun --standalone --nproc_per_node=N basicsr_denoise/test.py -opt ... --launcher pytorch

Rank ``r`` processes images ``r, r + N, ...`` of every set; rank 0 gathers the records and writes
one ``metrics.json`` in dataset order, each record naming the ``rank`` that produced it. Every image
is independent (MPI seeds its masks from the image name, synthetic noise from the image index), so
the content is that of a single-process run with the same seeds, timings aside.
"""

import os.path as osp
import sys

if __package__ in (None, ''):  # run as a script: import the package, not its sub-folders, by name
    sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from torch.utils.data import Subset  # noqa: E402

from basicsr_denoise.data import build_dataloader, build_dataset  # noqa: E402
from basicsr_denoise.models import build_model  # noqa: E402
from basicsr_denoise.models.base_model import summarize_records  # noqa: E402
from basicsr_denoise.utils.atomic import atomic_write_json  # noqa: E402
from basicsr_denoise.utils.dist import (barrier, destroy_on_exit, exit_worker, gather_shards,  # noqa: E402
                                        get_dist_info, init_dist, shard)
from basicsr_denoise.utils.errors import exit_on_user_error  # noqa: E402
from basicsr_denoise.utils.logger import get_root_logger, get_time_str  # noqa: E402
from basicsr_denoise.utils.misc import mkdir_and_rename, set_random_seed  # noqa: E402
from basicsr_denoise.utils.options import dict2str, parse_options  # noqa: E402


def summary_table(results):
    """A plain-text table: one row per dataset with its mean metrics and the image count."""
    keys = []
    for res in results.values():
        keys += [k for k in res['mean'] if k not in keys]
    header = ['dataset', 'images'] + keys
    rows = [[name, str(res['count'])] + [f"{res['mean'][k]:.4f}" if k in res['mean'] else '-' for k in keys]
            for name, res in results.items()]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = '  '.join('{:<%d}' % w for w in widths)
    lines = [fmt.format(*header), fmt.format(*['-' * w for w in widths])] + [fmt.format(*r) for r in rows]
    return '\n'.join(lines)


def test_pipeline(root_path=None, argv=None):
    """Run a test job (sharded across ranks under ``--launcher pytorch``); returns the metrics dict that rank 0
    writes to ``metrics.json`` (every rank returns it)."""
    opt, args = parse_options(is_train=False, argv=argv, root=root_path)
    init_dist(args.launcher, backend=(opt.get('dist_params') or {}).get('backend'))
    rank, world = get_dist_info()
    opt['dist'], opt['rank'], opt['world_size'] = False, rank, world  # each rank runs its own, unwrapped model
    set_random_seed(opt['manual_seed'])
    mkdir_and_rename(opt['path']['results_root'])  # rank 0
    barrier()
    logger = get_root_logger(log_file=osp.join(opt['path']['log'], f"test_{opt['name']}_{get_time_str()}.log"))
    logger.info(dict2str(opt))
    phases = [p for p in opt['datasets'] if p.startswith('test') or p.startswith('val')]
    loaders = []
    for phase in sorted(phases):
        dopt = opt['datasets'][phase]
        dataset = build_dataset(dopt, key=f'datasets.{phase}', source=opt['opt_path'])
        part = Subset(dataset, shard(range(len(dataset)), rank, world)) if world > 1 else dataset
        loaders.append((dopt.get('name', phase), build_dataloader(part, dopt, num_gpu=opt['num_gpu'])))
        logger.info(f"Test set {dopt.get('name', phase)}: {len(dataset)} images" +
                    (f', {world} processes' if world > 1 else '') + '.')
    model = build_model(opt)
    save_img = opt['val'].get('save_img', True)
    results = {}
    for name, loader in loaders:
        local = model.validation(loader, current_iter=opt['name'], save_img=save_img, dataset_name=name,
                                 all_ranks=True)
        for rec in local['images']:
            rec['rank'] = rank
        results[name] = summarize_records(gather_shards(local['images']))
        if rank == 0:
            atomic_write_json(results, osp.join(opt['path']['results_root'], 'metrics.json'))
    table = summary_table(results)
    if rank == 0:
        logger.info('Results (metrics.json in %s):\n%s', opt['path']['results_root'], table)
        print(table, flush=True)
    return results


def main(argv=None):
    """Command-line entry: user errors print one line (``error: ...``) and exit with status 2."""
    with destroy_on_exit():
        exit_on_user_error(test_pipeline, argv=argv)
    exit_worker(0)


if __name__ == '__main__':
    main()
