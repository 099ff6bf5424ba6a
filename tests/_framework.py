"""Helpers for the framework tests: tiny data, a slow tiny plugin network, option files."""

import os
import subprocess
import sys

import numpy as np
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))

PLUGIN_SRC = '''
import time
import torch
from torch import nn
from basicsr_denoise.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class TinyPluginNet(nn.Module):
    """Two convolutions; ``delay`` seconds of sleep per forward to make runs killable."""

    def __init__(self, num_ch=3, num_feat=4, delay=0.0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_ch, num_feat, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(num_feat, num_ch, 3, padding=1))
        self.delay = delay

    def forward(self, x):
        if self.delay:
            time.sleep(self.delay)
        return x + self.body(x)
'''


def write_plugin(folder):
    """Write the ``tiny_plugin`` module into ``folder`` (add it to PYTHONPATH)."""
    with open(os.path.join(folder, 'tiny_plugin.py'), 'w') as f:
        f.write(PLUGIN_SRC)


def write_pairs(folder, n=8, size=24, seed=0):
    """``n`` paired PNGs (``gt/`` clean gradients, ``lq/`` noisy) in ``folder``; returns (gt, lq) dirs."""
    import cv2
    rng = np.random.default_rng(seed)
    gt_dir, lq_dir = os.path.join(folder, 'gt'), os.path.join(folder, 'lq')
    os.makedirs(gt_dir, exist_ok=True)
    os.makedirs(lq_dir, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        clean = np.stack([xx * (i + 1) / n, yy, (xx + yy) / 2], -1)
        noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)
        cv2.imwrite(os.path.join(gt_dir, f'{i:03d}.png'), (clean * 255).round().astype(np.uint8))
        cv2.imwrite(os.path.join(lq_dir, f'{i:03d}.png'), (noisy * 255).round().astype(np.uint8))
    return gt_dir, lq_dir


def train_options(tmp_path, name='tiny', total_iter=6, delay=0.0, workers=0, ema=0.9, save_freq=3):
    """A complete DenoiseModel option dict training TinyPluginNet on tiny pairs."""
    gt, lq = write_pairs(str(tmp_path / 'data'))
    return {
        'name': name,
        'model_type': 'DenoiseModel',
        'num_gpu': 0,
        'manual_seed': 7,
        'plugins': ['tiny_plugin'],
        'datasets': {
            'train': {
                'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq,
                'gt_size': 16, 'use_hflip': True, 'use_rot': True, 'use_shuffle': True,
                'num_worker_per_gpu': workers, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1
            }
        },
        'network_g': {'type': 'TinyPluginNet', 'num_ch': 3, 'num_feat': 4, 'delay': delay},
        'path': {'root': str(tmp_path)},
        'train': {
            'ema_decay': ema,
            'optim_g': {'type': 'Adam', 'lr': 1e-2, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'CosineAnnealingLR', 'T_max': 6, 'eta_min': 1e-4},
            'total_iter': total_iter,
            'grad_clip': 1.0,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False},
    }


def write_options(opt, path):
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f)
    return str(path)


def env_with(tmp_path):
    """Environment for subprocesses: the plugin folder and the repo on PYTHONPATH, 1 thread."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(tmp_path), REPO, env.get('PYTHONPATH', '')])
    env['OMP_NUM_THREADS'] = '1'
    return env


def run_train(opt_file, tmp_path, *extra, check=True, timeout=180):
    """Run ``basicsr_denoise/train.py`` in a subprocess from ``tmp_path``."""
    cmd = [sys.executable, os.path.join(REPO, 'basicsr_denoise', 'train.py'), '-opt', opt_file, *extra]
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env_with(tmp_path), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'train.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}')
    return proc


def load_tool(name):
    """Import ``tools/<name>.py`` or ``benchmarks/<name>.py`` as a module (scripts, not a package)."""
    import importlib.util
    mod_name = f'_tools_{name}'
    if mod_name not in sys.modules:
        path = os.path.join(REPO, 'tools', f'{name}.py')
        if not os.path.isfile(path):
            path = os.path.join(REPO, 'benchmarks', f'{name}.py')
        spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    return sys.modules[mod_name]
