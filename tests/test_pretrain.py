"""MPI masked pre-training: torchrun on the CPU with resume, corrupt files, bad data folders, validation."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from basicsr_denoise.checkpoint import safe_load
from basicsr_denoise.utils.errors import DataError
from basicsr_denoise.utils.img_util import imwrite
from basicsr_denoise.utils.options import parse_options

from _framework import REPO  # noqa: E402

OPT = os.path.join(REPO, 'options', 'train', 'MPI', 'pretrain_MPI_syn_small.yml')


def _images(folder, n=6, size=72, corrupt=True):
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = os.path.join(folder, 'a' if i % 2 else 'b')  # searched recursively
        yy, xx = np.mgrid[0:size, 0:size] / size
        img = np.stack([xx, yy, rng.random() * np.ones_like(xx)], -1) + rng.normal(0, 0.02, (size, size, 3))
        imwrite(img.astype(np.float32), os.path.join(sub, f'{i}.png'))
    if corrupt:
        with open(os.path.join(folder, 'b', 'broken.jpg'), 'wb') as f:
            f.write(b'\xff\xd8\xff\xe0 truncated jpeg')
    return folder


def _overrides(data, total_iter, val=False):
    ov = [f'datasets.train.dataroot_gt={data}', 'datasets.train.gt_size=64', 'datasets.train.batch_size_per_gpu=2',
          'datasets.train.num_worker_per_gpu=1', f'train.total_iter={total_iter}', 'logger.print_freq=1',
          'logger.save_checkpoint_freq=2', 'logger.use_tb_logger=false', 'name=pre_tiny']
    if val:
        ov += [f'datasets.val_1.dataroot_gt={data}/a', 'datasets.val_2=~', 'val.val_freq=2']
    else:
        ov += ['datasets.val_1=~', 'datasets.val_2=~']
    return ov


def _torchrun(tmp_path, *args):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           os.path.join(REPO, 'basicsr_denoise', 'train.py'), '-opt', OPT, '--launcher', 'pytorch', *args]
    env = {**os.environ, 'PYTHONPATH': REPO, 'OMP_NUM_THREADS': '1'}
    return subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=400)


@pytest.mark.slow  # a subprocess
def test_torchrun_pretraining_resumes_and_counts_corrupt_files(tmp_path):
    data = _images(str(tmp_path / 'data'))
    first = _torchrun(tmp_path, '--force_yml', *_overrides(data, 2))
    assert first.returncode == 0, first.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'pre_tiny'
    assert sorted(os.listdir(exp / 'training_states')) == ['2.state']
    assert 'Model [MaskedPretrainModel] is created.' in first.stderr
    assert 'unreadable training image read(s) skipped so far' in first.stderr  # broken.jpg is counted, not fatal
    second = _torchrun(tmp_path, '--auto_resume', '--force_yml', *_overrides(data, 4))
    assert second.returncode == 0, second.stderr[-3000:]
    assert 'resuming from' in second.stderr and 'Resuming training from epoch' in second.stderr
    assert 'iter:       3/4' in second.stderr and 'iter:       1/' not in second.stderr
    ckpt = safe_load(str(exp / 'models' / 'net_g_4.pth'))
    assert ckpt['params']['net.1.0.1.1.weight'].shape[1] == 6  # the authors' key layout, 6 input channels
    before = safe_load(str(exp / 'models' / 'net_g_2.pth'))['params']['net.1.0.1.1.weight']
    assert not torch.equal(before, ckpt['params']['net.1.0.1.1.weight'])


@pytest.mark.slow  # a subprocess
def test_validation_reports_masked_psnr_and_zero_shot_check(tmp_path):
    data = _images(str(tmp_path / 'data'), corrupt=False)
    env = {**os.environ, 'PYTHONPATH': REPO, 'OMP_NUM_THREADS': '1'}
    # with an EMA, validation fills with the frozen EMA copy: the filler must still fine-tune it
    ov = _overrides(data, 2, val=True) + ['datasets.val_2={type: SyntheticNoisyDataset, name: noisy, '
                                          f'dataroot_gt: {data}/a, noise: {{type: Gaussian, sigma: 25}}}}',
                                          'val.fill.iterations=2', 'datasets.train.num_worker_per_gpu=0',
                                          'train.ema_decay=0.9']
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'basicsr_denoise', 'train.py'), '-opt', OPT,
                           '--force_yml', *ov], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Validation samples_masked' in proc.stderr and 'Validation noisy' in proc.stderr
    assert proc.stderr.count('# psnr:') == 2


@pytest.mark.parametrize('folder', ['missing', 'empty'])
def test_missing_or_empty_data_folder_names_the_path(tmp_path, folder):
    path = tmp_path / folder
    if folder == 'empty':
        path.mkdir()
    opt, _ = parse_options(True, ['-opt', OPT, '--force_yml', f'datasets.train.dataroot_gt={path}'], root=str(tmp_path))
    from basicsr_denoise.data import build_dataset
    with pytest.raises(DataError, match=str(path)):
        build_dataset(opt['datasets']['train'], key='datasets.train', source=OPT)


@pytest.mark.parametrize('precision', [['train.autocast=bf16'], ['train.channels_last=true'],
                                       ['train.autocast=bf16', 'train.channels_last=true']])
def test_pretraining_step_in_bf16_and_channels_last_is_close_to_fp32(tmp_path, precision):
    from basicsr_denoise.models import build_model

    def one_step(extra):
        opt, _ = parse_options(True, ['-opt', OPT, '--force_yml', *_overrides(str(tmp_path), 2), 'num_gpu=0', *extra],
                               root=str(tmp_path))
        opt['dist'], opt['rank'], opt['world_size'] = False, 0, 1
        torch.manual_seed(0)
        model = build_model(opt)
        model.feed_data({'gt': torch.rand(2, 3, 64, 64)})
        torch.manual_seed(1)
        model.optimize_parameters(1)
        return model

    ref, fast = one_step([]), one_step(precision)
    assert fast.channels_last == ('train.channels_last=true' in precision)
    assert fast.autocast_dtype == (torch.bfloat16 if 'train.autocast=bf16' in precision else None)
    assert np.isfinite(fast.log_dict['l_pix'])
    assert fast.log_dict['l_pix'] == pytest.approx(ref.log_dict['l_pix'], abs=0.05)  # dB of the PSNR loss
