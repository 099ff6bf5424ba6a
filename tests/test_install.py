"""A fresh virtual environment and a non-editable ``pip install`` of the source: the API and the ``basicsr-denoise``
command work from another folder, with the default weights found inside the installed package and checked."""

import json
import os
import shutil
import subprocess
import sys
import venv

import numpy as np
import pytest

from _framework import REPO

pytestmark = pytest.mark.slow  # builds a virtual environment and runs the command in subprocesses

with open(os.path.join(REPO, 'basicsr_denoise', 'weights', 'registry.json')) as _f:
    SHIPPED = tuple(name for name, entry in json.load(_f).items() if entry['sha256'])  # every shipped checkpoint


def _copy_source(dest):
    """What a clone holds that the build needs: the package, setup.py, README, MANIFEST.in, the shipped weights."""
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    shutil.copytree(os.path.join(REPO, 'basicsr_denoise'), dest / 'basicsr_denoise', ignore=ignore)
    for name in ('setup.py', 'README.md', 'MANIFEST.in'):
        shutil.copy(os.path.join(REPO, name), dest / name)
    (dest / 'experiments' / 'pretrained_models').mkdir(parents=True)
    for name in SHIPPED:
        shutil.copy(os.path.join(REPO, 'experiments', 'pretrained_models', name), dest / 'experiments' /
                    'pretrained_models' / name)


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """``(python, bin_dir, site_package_dir, workdir)`` of a fresh venv with the package installed non-editable.

    The venv sees the system's site-packages (torch==2.13.0 and the other dependencies are installed
    there by ``make install``), so only the package itself is built and installed (``--no-deps``).
    """
    root = tmp_path_factory.mktemp('install')
    _copy_source(root / 'src')
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(root / 'venv')
    python = str(root / 'venv' / 'bin' / 'python')
    proc = subprocess.run([python, '-m', 'pip', 'install', '-q', '--no-deps', str(root / 'src')],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.rmtree(root / 'src')  # nothing of the source tree is left to find the weights in
    code = 'import basicsr_denoise, os; print(os.path.dirname(basicsr_denoise.__file__))'
    site = subprocess.run([python, '-c', code], capture_output=True, text=True, cwd=str(root)).stdout.strip()
    work = root / 'elsewhere'
    work.mkdir()
    return python, root / 'venv' / 'bin', site, work


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'BASICSR_DENOISE_WEIGHTS')}
    env['OMP_NUM_THREADS'] = '1'
    return env


def test_installed_package_carries_its_weights(installed):
    _, _, site, _ = installed
    assert site.endswith(os.path.join('site-packages', 'basicsr_denoise')) and not site.startswith(REPO)
    for name in SHIPPED:
        assert os.path.isfile(os.path.join(site, 'weights', name))
    assert os.path.isfile(os.path.join(site, 'presets', 'mpi_fast.yml'))


def test_api_from_another_folder_with_mpi_and_n2s(installed):
    python, _, site, work = installed
    code = ('import numpy as np, basicsr_denoise as bd\n'
            'from basicsr_denoise.weights import resolve_weights\n'
            'x = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)\n'
            'a = bd.denoise(x, iterations=3, device="cpu")\n'
            'b = bd.denoise(x, method="n2s", sigma=25, device="cpu")\n'
            'print(a.dtype, a.shape, b.dtype, b.shape, int((a != x).any()), int((b != x).any()))\n'
            f'for n in {SHIPPED!r}: print(resolve_weights(n))')
    proc = subprocess.run([python, '-c', code], cwd=str(work), env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == 'uint8 (40, 48, 3) uint8 (40, 48, 3) 1 1'
    assert lines[1:] == [os.path.join(site, 'weights', n) for n in SHIPPED]


def test_console_script_from_another_folder_and_the_sha256_check(installed):
    python, bindir, site, work = installed
    import cv2
    cv2.imwrite(str(work / 'photo.png'), np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    script = str(bindir / 'basicsr-denoise')
    for out, extra in (('mpi', ['--iterations', '3']), ('n2s', ['--method', 'n2s', '--sigma', '25'])):
        proc = subprocess.run([script, 'photo.png', '-o', out, '--device', 'cpu', *extra], cwd=str(work), env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert os.path.join(site, 'weights') in proc.stdout and (work / out / 'photo_denoised.png').is_file()
    # the weights are checked at every load: a damaged installed file is a one-line error
    path = os.path.join(site, 'weights', 'N2S_gauss25_color_ours.pth')
    data = bytearray(open(path, 'rb').read())
    data[-100] ^= 0xFF
    with open(path, 'wb') as f:
        f.write(bytes(data))
    proc = subprocess.run([script, 'photo.png', '-o', 'bad', '--method', 'n2s', '--sigma', '25'], cwd=str(work),
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f'error: {path}: sha256') and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run([python, '-m', 'basicsr_denoise', '--help'], cwd=str(work), env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and 'basicsr-denoise' in proc.stdout
    assert sys.executable != python
