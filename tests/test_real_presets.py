"""The real-noise presets run from a fresh clone on the shipped MPI_real_ours.pth: no --weights, any input kind."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from basicsr_denoise.inference import MPIDenoiser
from basicsr_denoise.weights import registry, resolve_weights

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def _cli(args, cwd):
    return subprocess.run([sys.executable, '-m', 'basicsr_denoise', *args], cwd=str(cwd), capture_output=True,
                          text=True, timeout=300, env={**os.environ, 'PYTHONPATH': REPO, 'OMP_NUM_THREADS': '1'})


def _noisy(h, w, c, rng):
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    clean = np.stack([xx, yy, (xx + yy) / 2], -1)[..., :c]
    return np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1)


def test_real_weights_ship_with_the_package():
    entry = registry()['MPI_real_ours.pth']
    assert entry['sha256'] and entry['recipe'] == 'options/train/MPI/pretrain_MPI_real_small.yml'
    assert os.path.isfile(resolve_weights('MPI_real_ours.pth'))  # sha256-checked on resolution


@pytest.mark.parametrize('preset', ['real-fast', 'sidd-fast', 'real'])
def test_real_presets_run_without_weights(tmp_path, preset):
    """The CLI with only --preset (iterations shortened): the preset's own weights, an output, a metrics line."""
    img = tmp_path / 'photo.png'
    cv2.imwrite(str(img), (_noisy(40, 52, 3, np.random.default_rng(0)) * 255).round().astype(np.uint8))
    out = tmp_path / 'out'
    proc = _cli([str(img), '-o', str(out), '--preset', preset, '--iterations', '2'], tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = cv2.imread(str(out / 'photo_denoised.png'), cv2.IMREAD_UNCHANGED)
    assert res.shape == (40, 52, 3) and res.dtype == np.uint8
    metrics = json.load(open(out / 'metrics.json'))
    assert 'MPI_real_ours.pth' in json.dumps(metrics)


def test_real_preset_takes_rgba_16bit_and_gray(tmp_path):
    """RGBA 16-bit: alpha dropped, 16-bit RGB out. Gray: filled as one channel replicated, gray out."""
    rng = np.random.default_rng(1)
    rgba = np.concatenate([_noisy(36, 44, 3, rng), np.ones((36, 44, 1))], axis=2)
    cv2.imwrite(str(tmp_path / 'rgba16.png'), (rgba[..., [2, 1, 0, 3]] * 65535).round().astype(np.uint16))
    cv2.imwrite(str(tmp_path / 'gray.png'), (_noisy(36, 44, 1, rng)[..., 0] * 255).round().astype(np.uint8))
    out = tmp_path / 'out'
    proc = _cli([str(tmp_path / 'rgba16.png'), str(tmp_path / 'gray.png'), '-o', str(out), '--preset', 'real-fast',
                 '--iterations', '2'], tmp_path)
    assert proc.returncode == 0, proc.stderr
    rgb16 = cv2.imread(str(out / 'rgba16_denoised.png'), cv2.IMREAD_UNCHANGED)
    assert rgb16.shape == (36, 44, 3) and rgb16.dtype == np.uint16
    gray = cv2.imread(str(out / 'gray_denoised.png'), cv2.IMREAD_UNCHANGED)
    assert gray.shape == (36, 44) and gray.dtype == np.uint8


def test_real_model_denoises_real_like_noise():
    """Not a random network: 30 fill steps of the shipped model on a smooth image with correlated noise beat
    the same steps from random initialisation (a fixed seed)."""
    import torch
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    clean = np.stack([0.3 + 0.4 * xx, 0.5 - 0.2 * yy, 0.4 + 0.2 * xx * yy], -1).astype(np.float32)
    noise = cv2.GaussianBlur(rng.normal(0, 0.06, clean.shape).astype(np.float32), (3, 3), 0.6)
    x = torch.from_numpy(clean + noise).permute(2, 0, 1)[None]
    fill = {'iterations': 30, 'progress': False}
    ours = MPIDenoiser.from_pretrained('real-fast', fill=fill, device='cpu')
    torch.manual_seed(0)
    from basicsr_denoise.archs import build_network
    rand = MPIDenoiser(build_network(_real_network()), ours.fill, 'cpu')

    def err(den):
        return float(((den(x, 'img')[0].permute(1, 2, 0).numpy() - clean) ** 2).mean())
    assert err(ours) < err(rand)


def _real_network():
    from basicsr_denoise.presets import load_preset
    return load_preset('real-fast')['network_g']
