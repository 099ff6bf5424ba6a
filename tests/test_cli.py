"""The ``basicsr-denoise`` command: keyword-only API, output naming, output-folder errors, a killed run resumed."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from basicsr_denoise.cli import denoise_files, output_names
from basicsr_denoise.utils.img_util import imread, imwrite

from _framework import REPO
from conftest import HANG_S

ENV = {**os.environ, 'PYTHONPATH': REPO, 'OMP_NUM_THREADS': '1'}


def _images(folder, n, size=24, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        imwrite(rng.random((size, size + 4, 3)).astype(np.float32), str(folder / f'img{i}.png'))
    return sorted(str(p) for p in folder.iterdir())


def test_output_names_keep_stems_and_separate_collisions():
    files = ['a/x.png', 'b/x.png', 'a/y.png', 'c/z.png', 'c/z.jpg', 'd/c/z.png']
    assert output_names(files) == ['a_x', 'b_x', 'y', 'c_z_png_1', 'c_z_jpg', 'c_z_png_2']
    assert output_names(['p/x.png', 'q/y.png']) == ['x', 'y']  # no collision: the stem


def test_same_stem_inputs_from_two_folders_do_not_overwrite(tmp_path, weights):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    imwrite(np.zeros((24, 24, 3), np.float32), str(tmp_path / 'a' / 'x.png'))
    imwrite(np.ones((24, 24, 3), np.float32), str(tmp_path / 'b' / 'x.png'))
    res = denoise_files([str(tmp_path / 'a' / 'x.png'), str(tmp_path / 'b' / 'x.png')], str(tmp_path / 'out'),
                        weights=weights, preset=None, iterations=2, device='cpu')
    assert [r['name'] for r in res['images']] == ['a_x', 'b_x']
    dark, bright = imread(tmp_path / 'out' / 'a_x_denoised.png'), imread(tmp_path / 'out' / 'b_x_denoised.png')
    assert dark.mean() < 0.5 < bright.mean()


def test_denoise_files_takes_keyword_arguments_only(tmp_path, weights):
    with pytest.raises(TypeError):
        denoise_files([], str(tmp_path), 'fast', weights)  # noqa: the old 11 positional arguments


@pytest.mark.slow
@pytest.mark.parametrize('bad', ['/proc/x', 'a_file'])
def test_unwritable_output_folder_is_a_one_line_error_naming_it(tmp_path, weights, bad):
    img = _images(tmp_path, 1)[0]
    if bad == 'a_file':
        bad = str(tmp_path / 'a_file')
        open(bad, 'w').close()
    proc = subprocess.run([sys.executable, '-m', 'basicsr_denoise', img, '-o', bad, '--weights', weights],
                          cwd=str(tmp_path), env=ENV, capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f'error: cannot write to output folder {bad}')


@pytest.mark.slow
def test_killed_run_is_finished_by_skip_existing_and_metrics_lists_every_image(tmp_path, weights, run_until):
    inp = tmp_path / 'in'
    inp.mkdir()
    files = _images(inp, 6)
    out = tmp_path / 'out'
    cmd = [sys.executable, '-m', 'basicsr_denoise', str(inp), '-o', str(out), '--weights', weights, '--preset',
           'fast', '--iterations', '3', '--device', 'cpu']
    # SIGKILL in the middle of the 4th image: its comparison is written, its output not yet
    proc = run_until('img3_compare.png', 'after', cmd, cwd=str(tmp_path), env=ENV)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(f for f in os.listdir(out) if f.endswith('_denoised.png'))
    assert done == ['img0_denoised.png', 'img1_denoised.png', 'img2_denoised.png']
    assert (out / 'img3_compare.png').is_file()
    partial = json.load(open(out / 'metrics.json'))  # written after every image
    assert partial['count'] == 3 and [r['input'] for r in partial['images']] == files[:3]
    rerun = subprocess.run(cmd + ['--skip-existing'], cwd=str(tmp_path), env=ENV, capture_output=True, text=True,
                           timeout=HANG_S)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.count('skipped (output exists)') == 3
    denoised = [line.split(':')[0] for line in rerun.stdout.splitlines() if ' 8-bit, ' in line]
    assert denoised == ['img3', 'img4', 'img5']  # only the rest, the half-done one included
    metrics = json.load(open(out / 'metrics.json'))
    assert metrics['count'] == 6 and [r['input'] for r in metrics['images']] == files
    assert metrics['images'][:3] == partial['images']  # the first run's records are kept as they were
    assert all('seconds' in r for r in metrics['images'])
    assert not [f for f in os.listdir(out) if f.startswith('.')]  # no temporary files left
