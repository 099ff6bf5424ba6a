"""Carry a long training run across machines: its newest state, kept in the repository.

With ``logger.save_in_progress: true`` every checkpoint save also writes the run's newest
network file and training state to ``experiments/pretrained_models/in_progress/<name>/``
(``path.in_progress`` overrides the folder), replacing the previous pair, with a ``run.json``
that fingerprints the options the state belongs to. Commit that folder; on another machine,
``train.py -opt <same options> --auto_resume`` finds it when it is newer than anything in
``experiments/<name>/training_states``, copies it there and resumes bit-exactly.

Resuming from a state whose fingerprint differs from the options (another network, loss,
estimator or training noise) is a one-line :class:`OptionError` naming the first differing key,
never a silent restart.
"""

import glob
import json
import os
import os.path as osp
import shutil

from basicsr_denoise.utils.atomic import atomic_copy, atomic_write_json
from basicsr_denoise.utils.dist import barrier, get_dist_info
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.misc import state_iter

#: Option keys that must match between a carried state and the options resuming it.
FINGERPRINT_KEYS = ('model_type', 'network_g', 'train.score_opt', 'train.pixel_opt', 'train.mask',
                    'datasets.train.noise', 'datasets.train.gt_size')

#: A warning is logged when the carried pair grows beyond this (the repository's limit per run).
MAX_BYTES = 15 * 1024 * 1024


def in_progress_dir(opt):
    """The run's carry folder (``path.in_progress`` or ``<root>/experiments/pretrained_models/in_progress/<name>``)."""
    folder = opt['path'].get('in_progress')
    if folder:
        return folder if osp.isabs(folder) else osp.join(opt['path']['root'], folder)
    return osp.join(opt['path']['root'], 'experiments', 'pretrained_models', 'in_progress', opt['name'])


def _get(opt, dotted):
    node = opt
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def fingerprint(opt):
    """The options a training state belongs to: ``{dotted key: value}`` for :data:`FINGERPRINT_KEYS`."""
    return {k: _get(opt, k) for k in FINGERPRINT_KEYS}


def _diff(old, new, prefix=''):
    """The first dotted key at which two nested option values (JSON-normalised) differ, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            d = _diff(old.get(k), new.get(k), f'{prefix}.{k}' if prefix else str(k))
            if d:
                return d
        return None
    return None if old == new else (prefix, old, new)


def carried_state(folder):
    """``(iteration, state path, network path)`` of the pair in ``folder``, or None."""
    states = [p for p in glob.glob(osp.join(folder, '*.state')) if state_iter(p) >= 0]
    if not states:
        return None
    state = max(states, key=state_iter)
    it = state_iter(state)
    net = osp.join(folder, f'net_g_{it}.pth')
    if not osp.isfile(net):
        raise OptionError(f'{folder}: holds {osp.basename(state)} but not net_g_{it}.pth')
    return it, state, net


def check_fingerprint(opt, folder):
    """Raise :class:`OptionError` when ``folder/run.json`` was written for other options."""
    path = osp.join(folder, 'run.json')
    if not osp.isfile(path):
        raise OptionError(f'{path}: missing (a carried training state needs the fingerprint of its options)')
    with open(path, encoding='utf-8') as f:
        saved = json.load(f).get('fingerprint', {})
    d = _diff(json.loads(json.dumps(saved)), json.loads(json.dumps(fingerprint(opt))))
    if d:
        key, old, new = d
        raise OptionError(f"{opt.get('opt_path', 'options')}: {key} is {new!r} but the carried training state "
                          f'in {folder} was trained with {old!r}; restore that option, or move the folder away '
                          'to start afresh')


def export_state(opt, current_iter, logger=None):
    """Copy ``models/net_g_<iter>.pth`` and ``training_states/<iter>.state`` to the carry folder (rank 0),
    replacing the previous pair; write ``run.json`` (fingerprint, iteration) last."""
    folder = in_progress_dir(opt)
    os.makedirs(folder, exist_ok=True)
    pairs = [(osp.join(opt['path']['models'], f'net_g_{current_iter}.pth'), f'net_g_{current_iter}.pth'),
             (osp.join(opt['path']['training_states'], f'{current_iter}.state'), f'{current_iter}.state')]
    for src, name in pairs:  # byte copies, each renamed into place
        atomic_copy(src, osp.join(folder, name))
    keep = {name for _, name in pairs} | {'run.json'}
    for old in os.listdir(folder):
        if old not in keep and (old.endswith('.pth') or old.endswith('.state')):
            os.remove(osp.join(folder, old))
    meta = {'name': opt['name'], 'iter': current_iter, 'options': osp.basename(opt.get('opt_path') or ''),
            'fingerprint': fingerprint(opt)}
    atomic_write_json(meta, osp.join(folder, 'run.json'), default=str)
    size = sum(osp.getsize(osp.join(folder, n)) for _, n in pairs)
    if logger is not None:
        logger.info(f'Carried training state of iteration {current_iter} to {folder} ({size / 2**20:.1f} MB)')
        if size > MAX_BYTES:
            logger.warning(f'{folder}: {size / 2**20:.1f} MB exceeds the 15 MB carried per run')
    return folder


def import_newer_state(opt, local_latest, logger=None):
    """If the carry folder holds a newer state than ``local_latest`` (a path or None), check its
    fingerprint, copy it into the experiment folders and return its path there; else return None."""
    folder = in_progress_dir(opt)
    carried = carried_state(folder) if osp.isdir(folder) else None
    if carried is None:
        return None
    it, state, net = carried
    if local_latest is not None and state_iter(local_latest) >= it:
        return None
    check_fingerprint(opt, folder)
    if get_dist_info()[0] == 0:
        for src, dst_dir in ((net, opt['path']['models']), (state, opt['path']['training_states'])):
            os.makedirs(dst_dir, exist_ok=True)
            shutil.copyfile(src, osp.join(dst_dir, osp.basename(src)))
    barrier()
    if logger is not None:
        logger.info(f'--auto_resume: took the carried training state of iteration {it} from {folder}')
    return osp.join(opt['path']['training_states'], osp.basename(state))
