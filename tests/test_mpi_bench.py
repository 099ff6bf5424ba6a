"""benchmarks/mpi_bench.py: presets and --variant schedules interleaved, seconds per image and time ratios."""

import json

import shutil

import cv2
import numpy as np
import pytest

from _framework import load_tool  # noqa: E402

bench = load_tool('mpi_bench')


@pytest.fixture
def tiny_bench(tmp_path):
    """A Z1-like set of two 32x32 float crops."""
    rng = np.random.default_rng(0)
    for name in ('a', 'b'):
        clean = rng.random((32, 32, 3)).astype(np.float32)
        for sub, arr in (('gt', clean), ('noisy', clean + rng.normal(0, 0.1, clean.shape).astype(np.float32))):
            d = tmp_path / 'bench' / 'Z1_CBSD68_s25_128' / sub
            d.mkdir(parents=True, exist_ok=True)
            np.save(d / f'{name}.npy', arr)
    return tmp_path / 'bench'


def test_variants_run_interleaved_with_seconds_and_ratios(tiny_bench, tmp_path):
    out = tmp_path / 'out'
    rows = bench.main(['--bench', str(tiny_bench), '--presets', 'fast,short', '--seeds', '0,1',
                       '--variant', 'short=fill.iterations=1', '--weights', 'ours=MPI_syn_ours.pth',
                       '--out', str(out), '--force_yml', 'fill.iterations=3', 'fill.pad_multiple=32'])
    fast, short = rows['Z1/fast/ours'], rows['Z1/short/ours']
    assert sorted(fast['runs']) == ['0', '1'] and short['overrides'] == ['fill.iterations=1']
    assert all(len(r['seconds_per_image_list']) == 2 for r in fast['runs'].values())
    # the variant's override wins over the common one: 1 step instead of 3, so a different result
    assert fast['runs']['0']['psnr'] != short['runs']['0']['psnr']
    md = (out / 'summary.md').read_text()
    assert '| Z1_CBSD68_s25_128 | 200 it / beta 0.9 | ours | 0,1 |' in md
    ratio = float(md.splitlines()[3].split('|')[-2])
    assert ratio == pytest.approx(short['seconds_per_image'] / fast['seconds_per_image'], abs=1e-3)
    img = cv2.imread(str(out / 'frontier_Z1.png'))
    assert img is not None and img.shape[2] == 3 and (img < 250).any()  # drawn, not blank
    # resumable: a second call computes nothing new and returns the same rows
    again = bench.main(['--bench', str(tiny_bench), '--presets', 'fast,short', '--seeds', '0,1',
                        '--variant', 'short=fill.iterations=1', '--weights', 'ours=MPI_syn_ours.pth',
                        '--out', str(out)])
    assert again == json.loads((out / 'summary.json').read_text()) and again['Z1/fast/ours'] == fast


def test_unknown_preset_and_bad_variant_are_one_line_errors(tiny_bench, tmp_path):
    with pytest.raises(SystemExit, match="--presets: unknown preset 'lean'"):
        bench.main(['--bench', str(tiny_bench), '--presets', 'lean', '--weights', 'x=', '--out', str(tmp_path)])
    with pytest.raises(SystemExit, match='--variant .*the name must be new'):
        bench.main(['--bench', str(tiny_bench), '--variant', 'fast=fill.iterations=1', '--weights', 'x=',
                    '--out', str(tmp_path)])


def test_any_gt_noisy_folder_is_a_set_and_a_missing_one_is_an_error(tiny_bench, tmp_path):
    shutil.copytree(tiny_bench / 'Z1_CBSD68_s25_128', tiny_bench / 'D1_s50')
    rows = bench.main(['--bench', str(tiny_bench), '--sets', 'D1_s50', '--presets', 'fast,quick', '--seeds', '0',
                       '--weights', 'r=', 's=', '--skip', 'fast/s,quick/r,quick/s', '--out', str(tmp_path / 'o'),
                       '--force_yml', 'fill.iterations=1', 'fill.pad_multiple=32'])
    assert list(rows) == ['D1_s50/fast/r'] and len(rows['D1_s50/fast/r']['runs']['0']['psnr_per_image']) == 2
    assert '| D1_s50 | 200 it / beta 0.9 | r |' in (tmp_path / 'o' / 'summary.md').read_text()
    with pytest.raises(SystemExit, match=r"--sets: 'Q9' is not a folder of --bench holding gt/ and noisy/"):
        bench.main(['--bench', str(tiny_bench), '--sets', 'Q9', '--weights', 'r=', '--out', str(tmp_path)])


def test_make_bench_noise_renoises_the_clean_crops_repeatably(tiny_bench, tmp_path, capsys):
    tool = load_tool('make_bench_noise')
    src = tiny_bench / 'Z1_CBSD68_s25_128'
    for dst in ('p1', 'p2'):
        assert tool.main([str(src), str(tmp_path / dst), '{type: Poisson, eta: 0.01}']) == 2
    for name in ('a.npy', 'b.npy'):
        gt = np.load(src / 'gt' / name)
        noisy = np.load(tmp_path / 'p1' / 'noisy' / name)
        assert np.array_equal(np.load(tmp_path / 'p1' / 'gt' / name), gt) and noisy.dtype == np.float32
        assert np.array_equal(noisy, np.load(tmp_path / 'p2' / 'noisy' / name))  # seeded per image
        resid = noisy - gt
        assert abs(resid.mean()) < 0.01 and 0.3 < resid.var() / (0.01 * gt.mean()) < 3  # variance eta * x
    with pytest.raises(SystemExit):
        tool.main([str(src), str(tmp_path / 'p3'), '{type: Poisson}'])
    assert capsys.readouterr().err.strip() == 'error: noise.eta: required by Poisson, missing'


def test_make_bench_noise_takes_whole_images_by_position(tmp_path):
    from basicsr_denoise.utils.img_util import imwrite
    tool = load_tool('make_bench_noise')
    rng = np.random.default_rng(1)
    for i, shape in enumerate([(20, 30, 3), (30, 20, 3), (24, 24)]):
        imwrite((rng.random(shape) * 255).astype(np.uint8), str(tmp_path / f'img{i}.png'))
    assert tool.main([str(tmp_path), str(tmp_path / 'set'), '{type: Gaussian, sigma: 25}', '--indices', '1,2,7']) == 2
    assert sorted(p.name for p in (tmp_path / 'set' / 'noisy').iterdir()) == ['img1.npy', 'img2.npy']
    gray = np.load(tmp_path / 'set' / 'gt' / 'img2.npy')
    assert gray.shape == (24, 24, 3) and np.array_equal(gray[..., 0], gray[..., 2])  # gray -> three channels
    resid = np.load(tmp_path / 'set' / 'noisy' / 'img1.npy') - np.load(tmp_path / 'set' / 'gt' / 'img1.npy')
    assert resid.shape == (30, 20, 3) and 20 < resid.std() * 255 < 30
