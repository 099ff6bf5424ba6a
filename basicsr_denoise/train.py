"""Training entry point.

Single process::

    python basicsr_denoise/train.py -opt options/train/MPI/pretrain_MPI_syn_small.yml

Distributed (ranks from torchrun's environment; gloo on CPU, nccl on CUDA)::

    torchrun --standalone --nproc_per_node=2 basicsr_denoise/train.py -opt ... --launcher pytorch

Order of start-up: parse and validate options (no side effects), start the
process group, seed (``manual_seed + rank``), then create folders and log.
"""

import glob
import math
import os
import os.path as osp
import shutil
import sys
import time

if __package__ in (None, ''):  # run as a script: import the package, not its sub-folders, by name
    sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

import torch  # noqa: E402
import yaml  # noqa: E402

from basicsr_denoise.data import build_dataloader, build_dataset  # noqa: E402
from basicsr_denoise.data.sampler import EnlargedSampler  # noqa: E402
from basicsr_denoise.models import build_model  # noqa: E402
from basicsr_denoise.utils.carry import export_state, import_newer_state  # noqa: E402
from basicsr_denoise.checkpoint import safe_load  # noqa: E402
from basicsr_denoise.utils.dist import (barrier, destroy_on_exit, exit_worker, get_dist_info, init_dist,  # noqa: E402
                                       reduce_mean)
from basicsr_denoise.utils.errors import DataError, exit_on_user_error  # noqa: E402
from basicsr_denoise.utils.logger import MessageLogger, get_root_logger, get_time_str, init_tb_logger  # noqa: E402
from basicsr_denoise.utils.misc import (find_latest_state, mkdir_and_rename, preserve_rng,  # noqa: E402
                                        set_random_seed, state_iter)
from basicsr_denoise.utils.options import dict2str, parse_options  # noqa: E402


def load_resume_state(opt, logger):
    """The training state to resume from (``--auto_resume`` or ``path.resume_state``), or None."""
    path = opt['path'].get('resume_state')
    if opt.get('auto_resume') and not path:
        path = find_latest_state(opt['path']['training_states'])
        path = import_newer_state(opt, path, logger) or path
        if path is None:
            logger.info(f"--auto_resume: no training state in {opt['path']['training_states']}; starting fresh")
            return None
        logger.info(f'--auto_resume: resuming from {path}')
    if not path:
        return None
    state = safe_load(path)
    if state.get('iter') != state_iter(path) and state_iter(path) >= 0:
        raise DataError(f"{path}: holds iteration {state.get('iter')}, its name says {state_iter(path)}")
    return state


def make_exp_dirs(opt, resume):
    """Create the experiment folders on rank 0; archive an existing folder unless resuming."""
    if get_dist_info()[0] != 0:
        return
    p = opt['path']
    if not resume:
        mkdir_and_rename(p['experiments_root'])
    for k in ('experiments_root', 'models', 'training_states', 'visualization'):
        os.makedirs(p[k], exist_ok=True)
    for k in ('models', 'training_states'):  # temp files of writes cut short by a kill
        for stale in glob.glob(osp.join(p[k], '.*.tmp')):
            os.remove(stale)


def save_options(opt):
    """Copy the option file and the resolved options (overrides applied) into the experiment folder."""
    if get_dist_info()[0] != 0:
        return
    exp = opt['path']['experiments_root']
    stamp = get_time_str()
    src = opt['opt_path']
    shutil.copyfile(src, osp.join(exp, f'{osp.splitext(osp.basename(src))[0]}_{stamp}.yml'))
    with open(osp.join(exp, f'resolved_options_{stamp}.yml'), 'w', encoding='utf-8') as f:
        yaml.safe_dump(opt, f, sort_keys=False)


def create_train_val_dataloaders(opt, logger):
    """Build the train loader (with its sampler) and the validation loaders."""
    rank, world = get_dist_info()
    source = opt.get('opt_path')
    train_loader = sampler = None
    val_loaders = []
    for phase, dopt in opt['datasets'].items():
        if phase == 'train':
            dataset = build_dataset(dopt, key='datasets.train', source=source)
            ratio = dopt.get('dataset_enlarge_ratio', 1)
            sampler = EnlargedSampler(len(dataset), world, rank, ratio, shuffle=dopt.get('use_shuffle', True),
                                      seed=opt['manual_seed'])
            train_loader = build_dataloader(dataset, dopt, num_gpu=opt['num_gpu'], dist=opt['dist'],
                                            sampler=sampler, seed=opt['manual_seed'])
            if len(train_loader) == 0:
                raise DataError(f"datasets.train: {len(dataset)} images are fewer than one batch of "
                                f"{dopt.get('batch_size_per_gpu')} per process")
            total_iter = opt['train']['total_iter']
            epochs = math.ceil(total_iter / len(train_loader))
            logger.info(f'Training statistics: images {len(dataset)}, enlarge ratio {ratio}, batch per process '
                        f"{dopt.get('batch_size_per_gpu')}, processes {world}, iterations per epoch "
                        f'{len(train_loader)}, total epochs {epochs}, total iterations {total_iter}.')
        elif phase.startswith('val'):
            dataset = build_dataset(dopt, key=f'datasets.{phase}', source=source)
            loader = build_dataloader(dataset, dopt, num_gpu=opt['num_gpu'], dist=False, sampler=None,
                                      seed=opt['manual_seed'])
            val_loaders.append((dopt.get('name', phase), loader))
            logger.info(f"Validation set {dopt.get('name', phase)}: {len(dataset)} images.")
    return train_loader, sampler, val_loaders


def run_validation(model, val_loaders, current_iter, tb_logger, opt):
    """Validate on rank 0 without touching any RNG stream (so resumes stay exact)."""
    with preserve_rng():
        for name, loader in val_loaders:
            model.validation(loader, current_iter, tb_logger, opt['val'].get('save_img', False), dataset_name=name)
    barrier()


def train_pipeline(root_path=None, argv=None):
    """Run a training job from the command line ``argv``.

    Args:
        root_path (str | None): Folder holding ``experiments/``; default: the current folder.
        argv (list[str] | None): Command-line arguments; None reads ``sys.argv``.

    Returns:
        BaseModel: the trained model.
    """
    opt, _args = parse_options(is_train=True, argv=argv, root=root_path)
    opt['dist'] = init_dist(_args.launcher, backend=(opt.get('dist_params') or {}).get('backend'))
    opt['rank'], opt['world_size'] = get_dist_info()
    set_random_seed(opt['manual_seed'] + opt['rank'])

    logger = get_root_logger()
    resume_state = load_resume_state(opt, logger)
    make_exp_dirs(opt, resume_state is not None)
    barrier()
    log_file = osp.join(opt['path']['log'], f"train_{opt['name']}_{get_time_str()}.log")
    logger = get_root_logger(log_file=log_file)
    save_options(opt)
    logger.info(f"torch {torch.__version__}; {opt['world_size']} process(es)\n" + dict2str(opt))
    tb_logger = None
    if opt['logger'].get('use_tb_logger') and 'debug' not in opt['name']:
        tb_logger = init_tb_logger(osp.join(opt['path']['experiments_root'], 'tb_logger'))

    train_loader, sampler, val_loaders = create_train_val_dataloaders(opt, logger)
    model = build_model(opt)
    if resume_state is not None:
        model.load_resume_networks(resume_state['iter'])
        model.resume_training(resume_state)
        epoch, current_iter = resume_state['epoch'], resume_state['iter']
        batch_in_epoch = resume_state.get('batch_in_epoch', 0)
        logger.info(f'Resuming training from epoch {epoch}, iteration {current_iter}.')
    else:
        epoch, current_iter, batch_in_epoch = 0, 0, 0

    total_iter = opt['train']['total_iter']
    warmup_iter = opt['train'].get('warmup_iter', -1)
    print_freq = opt['logger']['print_freq']
    save_freq = opt['logger']['save_checkpoint_freq']
    val_freq = (opt.get('val') or {}).get('val_freq')
    batch = opt['datasets']['train'].get('batch_size_per_gpu', 1)
    msg_logger = MessageLogger(opt, current_iter, tb_logger)
    logger.info(f'Start training from epoch {epoch}, iteration {current_iter}.')
    start = time.time()
    last_saved = current_iter if resume_state is not None else -1
    skipped = skipped_logged = 0
    while current_iter < total_iter:
        sampler.set_epoch(epoch)
        sampler.set_start(batch_in_epoch * batch)
        t_data = time.time()
        finished_epoch = True
        for data in train_loader:
            data_time = time.time() - t_data
            current_iter += 1
            batch_in_epoch += 1
            if 'skipped' in data:
                skipped += int(data['skipped'].sum())
            model.update_learning_rate(current_iter, warmup_iter)
            model.feed_data(data)
            model.optimize_parameters(current_iter)
            iter_time = time.time() - t_data
            if current_iter % print_freq == 0 or current_iter == total_iter:
                log = {'epoch': epoch, 'iter': current_iter, 'lrs': model.get_current_learning_rate(),
                       'time': iter_time, 'data_time': data_time}
                log.update(model.get_current_log())
                msg_logger(log)
                skipped_all = round(reduce_mean({'n': skipped})['n'] * opt['world_size'])
                if skipped_all > skipped_logged:
                    logger.warning(f'{skipped_all} unreadable training image read(s) skipped so far '
                                   '(the warnings above name the files)')
                    skipped_logged = skipped_all
            if current_iter % save_freq == 0 or current_iter == total_iter:
                logger.info(f'Saving models and training states at iteration {current_iter}.')
                model.save(epoch, current_iter, batch_in_epoch)
                last_saved = current_iter
                if opt['logger'].get('save_in_progress') and opt['rank'] == 0:
                    export_state(opt, current_iter, logger)
            if val_loaders and val_freq and current_iter % val_freq == 0:
                run_validation(model, val_loaders, current_iter, tb_logger, opt)
            t_data = time.time()
            if current_iter >= total_iter:
                finished_epoch = False
                break
        if finished_epoch:
            epoch += 1
            batch_in_epoch = 0
    if last_saved != current_iter:
        model.save(epoch, current_iter, batch_in_epoch)
        if opt['logger'].get('save_in_progress') and opt['rank'] == 0:
            export_state(opt, current_iter, logger)
    logger.info(f'End of training. Time consumed: {time.time() - start:.1f} s')
    if val_loaders and not (val_freq and current_iter % val_freq == 0):
        run_validation(model, val_loaders, current_iter, tb_logger, opt)
    if tb_logger is not None:
        tb_logger.close()
    return model


def main(argv=None):
    """Command-line entry: user errors print one line (``error: ...``) and exit with status 2."""
    with destroy_on_exit():
        exit_on_user_error(train_pipeline, argv=argv)
    exit_worker(0)


if __name__ == '__main__':
    main()
