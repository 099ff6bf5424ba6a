"""The training pipeline end to end: exact resume, SIGKILL safety, torchrun, archiving, safe loading."""

import glob
import os
import signal
import subprocess
import sys

import pytest
import torch

from basicsr_denoise.checkpoint import safe_load
from basicsr_denoise.utils.atomic import atomic_save
from basicsr_denoise.utils.errors import CheckpointError

from _framework import REPO, env_with, run_train, train_options, write_options, write_plugin  # noqa: E402
from conftest import HANG_S


def _exp(tmp_path, name):
    return tmp_path / 'experiments' / name


def _weights(tmp_path, name, it):
    return safe_load(str(_exp(tmp_path, name) / 'models' / f'net_g_{it}.pth'))


@pytest.mark.slow
@pytest.mark.parametrize('workers', [0, 2])
def test_resume_is_bit_exact(tmp_path, workers):
    write_plugin(str(tmp_path))
    straight = write_options(train_options(tmp_path, name='straight', total_iter=6, workers=workers),
                             tmp_path / 'straight.yml')
    split = write_options(train_options(tmp_path, name='split', total_iter=6, workers=workers), tmp_path / 'split.yml')
    run_train(straight, tmp_path)
    first = run_train(split, tmp_path, '--force_yml', 'train:total_iter=3')
    assert 'iter:       3/3' in first.stderr
    second = run_train(split, tmp_path, '--auto_resume')
    assert 'resuming from' in second.stderr and 'iter:       4/6' in second.stderr
    a, b = _weights(tmp_path, 'straight', 6), _weights(tmp_path, 'split', 6)
    assert set(a) == {'params', 'params_ema', 'network_g'}  # the weights and, as plain data, the architecture
    assert a['network_g'] == train_options(tmp_path)['network_g']
    for key in ('params', 'params_ema'):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f'{key}.{name} differs after resume'
    # and the run really trained: weights moved away from the 3-iteration ones
    c = _weights(tmp_path, 'split', 3)
    assert any(not torch.equal(a['params'][n], c['params'][n]) for n in a['params'])
    sa = safe_load(str(_exp(tmp_path, 'straight') / 'training_states' / '6.state'))
    assert sa['iter'] == 6 and sa['epoch'] == 1 and sa['batch_in_epoch'] == 2


@pytest.mark.slow
def test_sigkill_then_auto_resume_loses_at_most_one_period(tmp_path, run_until):
    write_plugin(str(tmp_path))
    path = write_options(train_options(tmp_path, name='killed', total_iter=24, save_freq=4), tmp_path / 'killed.yml')
    exp = _exp(tmp_path, 'killed')
    cmd = [sys.executable, os.path.join(REPO, 'basicsr_denoise', 'train.py'), '-opt', path]
    # SIGKILL at three moments, resuming each time: while the model of a checkpoint is written (its temporary file
    # complete, not yet renamed), between the model and the training state, and right after a checkpoint
    moments = [('net_g_8.pth', 'before', 4, [4]), ('12.state', 'before', 8, [4, 8, 12]),
               ('16.state', 'after', 16, [4, 8, 12, 16])]  # (the rename, newest state, models on disk)
    for round_, (name, when, newest, models) in enumerate(moments):
        proc = run_until(name, when, cmd + (['--auto_resume'] if round_ else []), cwd=str(tmp_path),
                         env=env_with(tmp_path))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        states = glob.glob(str(exp / 'training_states' / '*.state'))
        assert max(int(os.path.basename(p).split('.')[0]) for p in states) == newest
        on_disk = sorted(os.path.basename(f) for f in glob.glob(str(exp / 'models' / '*.pth')))
        assert on_disk == sorted(f'net_g_{it}.pth' for it in models)
        # every checkpoint and state on disk is complete and loadable
        for f in glob.glob(str(exp / '**' / '*.*'), recursive=True):
            if f.endswith(('.pth', '.state')):
                safe_load(f)
        # the write cut short left its temporary file; those of the earlier kills were swept on resume
        assert len(glob.glob(str(exp / '**' / '.*.tmp'), recursive=True)) == (when == 'before')
    done = run_train(path, tmp_path, '--auto_resume')
    assert '16.state' in done.stderr and 'iteration 16.' in done.stderr
    assert 'iter:      17/24' in done.stderr  # continues right after the newest checkpoint
    assert not glob.glob(str(exp / '**' / '.*.tmp'), recursive=True)
    # and nothing was lost: the three times killed run ends where an uninterrupted one does, bit for bit
    run_train(write_options(train_options(tmp_path, name='straight', total_iter=24, save_freq=4),
                            tmp_path / 'straight.yml'), tmp_path)
    a, b = _weights(tmp_path, 'straight', 24), _weights(tmp_path, 'killed', 24)
    for key in ('params', 'params_ema'):
        for param in a[key]:
            assert torch.equal(a[key][param], b[key][param]), f'{key}.{param} differs after three kills'


@pytest.mark.slow
def test_auto_resume_without_state_starts_fresh(tmp_path):
    write_plugin(str(tmp_path))
    path = write_options(train_options(tmp_path, name='fresh', total_iter=2), tmp_path / 'fresh.yml')
    proc = run_train(path, tmp_path, '--auto_resume')
    assert 'no training state' in proc.stderr and 'starting fresh' in proc.stderr


@pytest.mark.slow
def test_existing_experiment_is_archived_not_overwritten(tmp_path):
    write_plugin(str(tmp_path))
    path = write_options(train_options(tmp_path, name='arch', total_iter=2, save_freq=2), tmp_path / 'a.yml')
    run_train(path, tmp_path)
    marker = _exp(tmp_path, 'arch') / 'my_notes.txt'
    marker.write_text('keep me')
    run_train(path, tmp_path)
    archived = glob.glob(str(tmp_path / 'experiments' / 'arch_archived_*'))
    assert len(archived) == 1 and open(os.path.join(archived[0], 'my_notes.txt')).read() == 'keep me'
    exp = _exp(tmp_path, 'arch')
    assert (exp / 'models' / 'net_g_2.pth').exists() and not (exp / 'my_notes.txt').exists()
    assert glob.glob(str(exp / 'a_*.yml')) and glob.glob(str(exp / 'resolved_options_*.yml'))


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    write_plugin(str(tmp_path))
    opt = train_options(tmp_path, name='ddp', total_iter=4, save_freq=4, ema=0)
    path = write_options(opt, tmp_path / 'ddp.yml')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           os.path.join(REPO, 'basicsr_denoise', 'train.py'), '-opt', path, '--launcher', 'pytorch']
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env_with(tmp_path), capture_output=True, text=True,
                          timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = _exp(tmp_path, 'ddp')
    assert sorted(os.listdir(exp / 'models')) == ['net_g_4.pth']
    assert sorted(os.listdir(exp / 'training_states')) == ['4.state']
    assert len(glob.glob(str(exp / 'train_ddp_*.log'))) == 1
    # rank 0 alone logs: each iteration line appears once, and the run saw 2 processes
    lines = [ln for ln in proc.stderr.splitlines() if 'iter:' in ln and '/4' in ln]
    assert len(lines) == 4, proc.stderr[-3000:]
    assert '2 process(es)' in proc.stderr and 'processes 2' in proc.stderr
    state = safe_load(str(exp / 'training_states' / '4.state'))
    assert len(state['rng']) == 2  # both ranks' random streams are kept for an exact resume


@pytest.mark.slow
def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'pwned'

    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    bad = tmp_path / 'evil.pth'
    torch.save({'params': {'w': torch.zeros(1)}, 'extra': Evil()}, bad)
    with pytest.raises(CheckpointError) as err:
        safe_load(str(bad))
    assert str(bad) in str(err.value) and 'refusing to load' in str(err.value) and '\n' not in str(err.value)
    assert not marker.exists()
    # through the CLI as a pre-trained network: one-line error, no code run
    write_plugin(str(tmp_path))
    opt = train_options(tmp_path, name='evil', total_iter=1)
    opt['path']['pretrain_network_g'] = str(bad)
    proc = run_train(write_options(opt, tmp_path / 'evil.yml'), tmp_path, check=False)
    assert proc.returncode == 2 and not marker.exists()
    assert proc.stderr.strip().splitlines()[-1].startswith(f'error: refusing to load {bad}')


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    path = str(tmp_path / 'a.pth')
    atomic_save({'x': torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('boom')

    with pytest.raises(RuntimeError):
        atomic_save({'x': Unpicklable()}, path)
    assert torch.equal(safe_load(path)['x'], torch.ones(2))
    assert os.listdir(tmp_path) == ['a.pth']


def _stepped(sched_opt, steps, lr=2e-4):
    from basicsr_denoise.models.base_model import build_scheduler
    p = [torch.nn.Parameter(torch.zeros(1))]
    optim = torch.optim.Adam(p, lr=lr)
    sched = build_scheduler(optim, sched_opt, 2000)
    for _ in range(steps):
        optim.step()
        sched.step()
    return optim, sched


class _Records(list):
    """A logger that keeps its warnings (the project logger may not propagate to pytest's caplog)."""

    def warning(self, msg):
        self.append(msg)


@pytest.mark.parametrize('resume_at', [750, 1000])
def test_resume_takes_the_schedule_from_the_options(resume_at):
    """A resume keeps the state's progress but the options' milestones: the lr is recomputed, also after a drop
    that the new schedule no longer has, and the change is logged."""
    from basicsr_denoise.models.base_model import BaseModel
    old = {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.1}
    new = {'type': 'MultiStepLR', 'milestones': [1750], 'gamma': 0.1}
    optim, sched = _stepped(old, resume_at)
    assert optim.param_groups[0]['lr'] == pytest.approx(2e-4 if resume_at < 1000 else 2e-5)
    optim2, sched2 = _stepped(new, 0)
    optim2.load_state_dict(optim.state_dict())
    model = BaseModel.__new__(BaseModel)
    model.logger = _Records()
    model._load_scheduler_state(sched2, sched.state_dict())
    assert len(model.logger) == 1 and 'milestones: {1000: 1} -> {1750: 1}' in model.logger[0]
    assert sched2.last_epoch == resume_at and optim2.param_groups[0]['lr'] == pytest.approx(2e-4)
    for _ in range(1750 - resume_at):
        optim2.step()
        sched2.step()
    assert optim2.param_groups[0]['lr'] == pytest.approx(2e-5)


def test_resume_with_the_same_schedule_restores_it_unchanged():
    from basicsr_denoise.models.base_model import BaseModel
    cos = {'type': 'CosineAnnealingLR', 'T_max': 2500, 'eta_min': 1e-5}
    optim, sched = _stepped(cos, 2000, lr=2e-3)
    optim2, sched2 = _stepped(cos, 0, lr=2e-3)
    optim2.load_state_dict(optim.state_dict())
    model = BaseModel.__new__(BaseModel)
    model.logger = _Records()
    model._load_scheduler_state(sched2, sched.state_dict())
    assert model.logger == [] and sched2.state_dict() == sched.state_dict()
    assert optim2.param_groups[0]['lr'] == optim.param_groups[0]['lr']
