"""torchrun, 2 ranks, gloo: sharded zero-shot evaluation (test.py and the command) equals a single-process run;
a SIGKILLed rank ends the job, the other rank included, with a non-zero status (not a hang until the 30-minute
collective timeout), in evaluation and in training, and ``--auto_resume`` continues the training."""

import glob
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from basicsr_denoise.archs import build_network
from basicsr_denoise.checkpoint import export_checkpoint
from basicsr_denoise.utils.img_util import imwrite

from _framework import REPO, env_with, train_options, write_options, write_plugin
from conftest import HANG_S

TINY = {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel',
        'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 3}}
TORCHRUN = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']


def _env(tmp_path):
    env = env_with(tmp_path)
    for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(k, None)
    return env


def _setup(tmp_path, n=4, iterations=3):
    """``n`` tiny noisy/clean pairs, tiny self-describing weights and an MPI test option file."""
    rng = np.random.default_rng(0)
    for sub in ('gt', 'lq', 'photos'):
        (tmp_path / sub).mkdir()
    for i in range(n):
        clean = rng.random((24, 28, 3)).astype(np.float32)
        np.save(tmp_path / 'gt' / f'im{i}.npy', clean)
        np.save(tmp_path / 'lq' / f'im{i}.npy', clean + rng.normal(0, 0.1, clean.shape).astype(np.float32))
        imwrite(clean, str(tmp_path / 'photos' / f'photo{i}.png'))
    torch.manual_seed(0)
    torch.save({'params': build_network(TINY).state_dict()}, tmp_path / 'raw.pth')
    export_checkpoint(str(tmp_path / 'raw.pth'), str(tmp_path / 'w.pth'), network_g=TINY)
    opt = {'name': 'shard', 'model_type': 'IterativeFillModel', 'num_gpu': 0,
           'datasets': {'test_1': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / 'gt'),
                                   'dataroot_lq': str(tmp_path / 'lq')}},
           'network_g': TINY, 'path': {'pretrain_network_g': str(tmp_path / 'w.pth')},
           'fill': {'iterations': iterations, 'pad_multiple': 1, 'progress': False, 'seed': 3},
           'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'float_mode': True}}}}
    path = tmp_path / 'shard.yml'
    path.write_text(yaml.safe_dump(opt))
    return str(path)


def _workers(pid):
    """``{rank: pid}`` of torchrun's worker processes (the descendants of ``pid`` with ``RANK`` set)."""
    found, todo = {}, [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(k) for k in open(f'/proc/{p}/task/{p}/children').read().split()]
        except OSError:
            continue
        todo += kids
        for k in kids:
            try:
                env = open(f'/proc/{k}/environ', 'rb').read().split(b'\0')
            except OSError:
                continue
            rank = [int(e[5:]) for e in env if e.startswith(b'RANK=')]
            if rank:
                found[rank[0]] = k
    return found


def _alive(pid):
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def _kill_rank(proc, ready, wait_for, rank=1):
    """Wait for ``ready()``, SIGKILL the worker of ``rank``; returns torchrun's exit status once every worker ended.

    The job must end by itself: torchrun gets ``HANG_S`` (10 minutes, a third of the collective timeout) to exit.
    """
    wait_for(ready, proc, 'both workers started')
    workers = _workers(proc.pid)
    assert set(workers) == {0, 1}, workers
    os.kill(workers[rank], signal.SIGKILL)
    try:
        proc.wait(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f'torchrun still runs {HANG_S} s after a worker was killed: the job hangs') from None
    assert not [r for r, pid in workers.items() if _alive(pid)], 'a worker outlived torchrun'
    return proc.returncode


@pytest.mark.slow
def test_sharded_test_py_and_command_equal_a_single_process_run(tmp_path):
    opt = _setup(tmp_path)
    env = _env(tmp_path)
    single = subprocess.run([sys.executable, os.path.join(REPO, 'basicsr_denoise', 'test.py'), '-opt', opt,
                             '--force_yml', 'path.results_root=' + str(tmp_path / 'single')], cwd=str(tmp_path),
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    dist = subprocess.run(TORCHRUN + [os.path.join(REPO, 'basicsr_denoise', 'test.py'), '-opt', opt, '--launcher',
                                      'pytorch', '--force_yml', 'path.results_root=' + str(tmp_path / 'dist')],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert dist.returncode == 0, dist.stderr[-3000:]
    a = json.load(open(tmp_path / 'single' / 'metrics.json'))['tiny']
    b = json.load(open(tmp_path / 'dist' / 'metrics.json'))['tiny']
    names = [f'im{i}' for i in range(4)]
    assert [r['name'] for r in a['images']] == [r['name'] for r in b['images']] == names  # each exactly once
    assert [r['psnr'] for r in a['images']] == [r['psnr'] for r in b['images']]  # identical, not close
    assert [r['rank'] for r in b['images']] == [0, 1, 0, 1] and {r['rank'] for r in a['images']} == {0}
    assert a['mean']['psnr'] == b['mean']['psnr'] and b['count'] == 4
    # the command under torchrun: the same images split over two processes, one metrics.json, same pixels
    files = sorted(glob.glob(str(tmp_path / 'photos' / 'photo*.png')))
    cmd = ['-m', 'basicsr_denoise', *files, '--weights', str(tmp_path / 'w.pth'), '--preset', 'fast',
           '--iterations', '3', '--device', 'cpu']
    one = subprocess.run([sys.executable, *cmd, '-o', str(tmp_path / 'c1')], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=300)
    two = subprocess.run(TORCHRUN + [*cmd, '-o', str(tmp_path / 'c2')], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    m1, m2 = json.load(open(tmp_path / 'c1' / 'metrics.json')), json.load(open(tmp_path / 'c2' / 'metrics.json'))
    assert [r['name'] for r in m2['images']] == [f'photo{i}' for i in range(4)] and m2['count'] == 4
    assert [r['rank'] for r in m2['images']] == [0, 1, 0, 1]
    for i in range(4):
        assert open(tmp_path / 'c1' / f'photo{i}_denoised.png', 'rb').read() == \
            open(tmp_path / 'c2' / f'photo{i}_denoised.png', 'rb').read()
    assert not glob.glob(str(tmp_path / 'c2' / '.*'))  # the per-rank parts are merged and removed
    assert m1['count'] == 4


@pytest.mark.slow
def test_dead_rank_in_sharded_evaluation_ends_the_job(tmp_path, wait_for):
    opt = _setup(tmp_path, iterations=100000)  # would run for hours
    proc = subprocess.Popen(TORCHRUN + [os.path.join(REPO, 'basicsr_denoise', 'test.py'), '-opt', opt, '--launcher',
                                        'pytorch'], cwd=str(tmp_path), env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / 'results' / 'shard'

    def filling():  # both ranks are past start-up once rank 0 logged its options
        return bool(glob.glob(str(log / 'test_shard_*.log'))) and len(_workers(proc.pid)) == 2

    assert _kill_rank(proc, filling, wait_for) != 0


@pytest.mark.slow
def test_dead_rank_in_training_ends_the_job_and_auto_resume_continues(tmp_path, wait_for):
    write_plugin(str(tmp_path))
    opt = train_options(tmp_path, name='ddp_kill', total_iter=100000, delay=0.05, save_freq=2, ema=0)  # for hours
    path = write_options(opt, tmp_path / 'ddp_kill.yml')
    states = tmp_path / 'experiments' / 'ddp_kill' / 'training_states'
    cmd = TORCHRUN + [os.path.join(REPO, 'basicsr_denoise', 'train.py'), '-opt', path, '--launcher', 'pytorch']
    proc = subprocess.Popen(cmd, cwd=str(tmp_path), env=_env(tmp_path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert _kill_rank(proc, lambda: len(glob.glob(str(states / '*.state'))) >= 2, wait_for) != 0
    latest = max(int(os.path.basename(p).split('.')[0]) for p in glob.glob(str(states / '*.state')))
    resumed = subprocess.run(cmd + ['--auto_resume', '--force_yml', f'train.total_iter={latest + 2}'],
                             cwd=str(tmp_path), env=_env(tmp_path),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Resuming training from epoch' in resumed.stderr and f'iteration {latest}.' in resumed.stderr
    assert os.path.isfile(tmp_path / 'experiments' / 'ddp_kill' / 'models' / f'net_g_{latest + 2}.pth')


@pytest.mark.parametrize('n', [0, 1, 3])
def test_shard_and_gather_round_trip(n):
    from basicsr_denoise.utils.dist import shard
    items = list(range(n * 2 + 1))
    parts = [shard(items, r, 2) for r in range(2)]
    merged = [p[i] for i in range(max(len(p) for p in parts)) for p in parts if i < len(p)]
    assert merged == items


@pytest.mark.slow
def test_exit_worker_leaves_a_shut_down_worker_at_once_with_its_code_and_its_output_flushed(tmp_path):
    code = ('import logging, sys\n'
            'from basicsr_denoise.utils import dist\n'
            'logging.basicConfig(filename=sys.argv[1], level=logging.INFO)\n'
            'logging.info("logged")\n'
            'print("written", end="")  # still in the buffer: stdout is a pipe\n'
            'dist._SHUT_DOWN = True\n'
            'import atexit; atexit.register(lambda: print("finalised"))\n'
            'dist.exit_worker(int(sys.argv[2]))\n'
            'print("not reached")\n')
    for status in (0, 1):
        log = tmp_path / f'{status}.log'
        res = subprocess.run([sys.executable, '-c', code, str(log), str(status)], capture_output=True, text=True,
                             env=env_with(tmp_path), timeout=60)
        assert res.returncode == status and res.stdout == 'written'  # no atexit, no finalisation
        assert 'logged' in log.read_text()
    plain = subprocess.run([sys.executable, '-c', 'from basicsr_denoise.utils import dist\n'
                            'import atexit; atexit.register(lambda: print("finalised"))\n'
                            'dist.exit_worker(0); print("returned")\ndist.exit_worker(3)'],
                           capture_output=True, text=True, env=env_with(tmp_path), timeout=60)
    assert plain.returncode == 3 and plain.stdout.split() == ['returned', 'finalised']  # not a torchrun worker
