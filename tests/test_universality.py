"""benchmarks/universality.py end to end on tiny crops, with the CBM3D stub, and its oracle search."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from basicsr_denoise.utils.errors import OptionError

from _framework import load_tool  # noqa: E402

uni = load_tool('universality')


def _write(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def tiny_datasets(tmp_path):
    """One 72x72 image in CBSD68/ and Kodak24/, one noisy/gt pair in real/PolyU and real/SIDD_samples."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:72, 0:72] / 72.0
    clean = (np.stack([xx, yy, (xx + yy) / 2], -1) * 255).astype(np.uint8)
    _write(str(tmp_path / 'CBSD68' / 'a.png'), clean)
    _write(str(tmp_path / 'Kodak24' / 'kodim01.png'), clean[::-1].copy())
    for folder, ext in (('PolyU', '.JPG'), ('SIDD_samples', '.png')):
        noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
        _write(str(tmp_path / 'real' / folder / 'gt' / f'p0{ext}'), clean)
        _write(str(tmp_path / 'real' / folder / 'noisy' / f'p0{ext}'), noisy)
    return tmp_path


def _args(datasets, out, *extra):
    return ['--datasets', str(datasets), '--out', str(out), '--crops', '1', '--real_crops', '1',
            '--crop_size', '48', '--iterations', '2', '--cbm3d', 'stub', *extra]


def test_universality_end_to_end_with_stub(tiny_datasets, tmp_path):
    out = tmp_path / 'out'
    summary = uni.main(_args(tiny_datasets, out))
    table = (out / 'universality.md').read_text()
    for label, _ in uni.NOISES.values():
        assert f'{label}, MPI `fast`' in table
    assert 'PolyU (real), MPI `real-fast`' in table and 'SIDD (real), MPI `sidd-fast`' in table
    assert 'CBM3D est. (stub)' in table and 'CBM3D oracle (upper bound) (stub)' in table
    assert 'a 3x3 box filter stands in for CBM3D' in table
    data = json.loads((out / 'universality.json').read_text())
    assert data['cbm3d_stub'] is True
    crops = data['crops']
    rows = {c['row'] for c in crops}
    assert rows == set(uni.NOISES) | set(uni.REAL)
    # two synthetic crops per noise (one of CBSD68, one of Kodak24), one per real set
    assert sum(1 for c in crops if c['row'] == 'gauss25' and c['method'] == 'mpi_ours') == 2
    assert sum(1 for c in crops if c['row'] == 'sidd' and c['method'] == 'mpi_ours') == 1
    # Noise2Score only where a checkpoint matches the noise; no authors' column without --authors
    assert {c['row'] for c in crops if c['method'] == 'n2s_ours'} == {'gauss25'}
    assert not any(c['method'] == 'mpi_authors' for c in crops)
    assert all(np.isfinite(c['psnr']) and 0 < c['ssim'] <= 1 and c['seconds'] > 0 for c in crops)  # a crop was timed
    assert all(c['stub'] == c['method'].startswith('cbm3d') for c in crops)
    # the picture: one strip per row
    img = np.asarray(Image.open(out / 'universality.png'))
    assert img.shape[0] > 7 * 48 and img.shape[1] >= 4 * 48
    assert len(summary) == len({(c['row'], c['method']) for c in crops})


def test_universality_repeats_exactly_resumes_and_never_overwrites(tiny_datasets, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    rows = ['--rows', 'poisson30,sidd', '--methods', 'mpi_ours,cbm3d_est']
    first = uni.main(_args(tiny_datasets, out, *rows))
    with pytest.raises(OptionError, match='universality.md exists; pass --resume to continue it or --force'):
        uni.main(_args(tiny_datasets, out, *rows))
    second = uni.main(_args(tiny_datasets, out, *rows, '--force'))  # recomputed from scratch: the same table
    key = [(s['row'], s['method'], s['psnr'], s['ssim']) for s in first]
    assert key == [(s['row'], s['method'], s['psnr'], s['ssim']) for s in second]
    # --resume reuses every matching crop and computes only what is missing (here: a new method)
    done = []
    real_run = uni.Methods.run
    monkeypatch.setattr(uni.Methods, 'run', lambda self, method, *a: done.append(method) or real_run(self, method, *a))
    third = uni.main(_args(tiny_datasets, out, '--rows', 'poisson30,sidd',
                           '--methods', 'mpi_ours,cbm3d_est,cbm3d_oracle', '--resume'))
    assert set(done) == {'cbm3d_oracle'} and len(done) == 3  # two synthetic crops, one SIDD crop
    assert key == [(s['row'], s['method'], s['psnr'], s['ssim']) for s in third if s['method'] != 'cbm3d_oracle']
    # other weights or iterations are another configuration: recomputed, never mixed in
    done.clear()
    uni.main(_args(tiny_datasets, out, '--rows', 'poisson30', '--methods', 'mpi_ours', '--resume', '--iterations', '3'))
    assert done == ['mpi_ours', 'mpi_ours']


def test_universality_bad_arguments_name_the_option(tiny_datasets, tmp_path):
    with pytest.raises(OptionError, match="--rows: unknown row 'gauss'; choose from gauss25"):
        uni.main(_args(tiny_datasets, tmp_path / 'o', '--rows', 'gauss'))
    with pytest.raises(OptionError, match="--methods: unknown method 'bm3d'"):
        uni.main(_args(tiny_datasets, tmp_path / 'o', '--methods', 'bm3d'))
    with pytest.raises(OptionError, match='--authors: .* must hold imgnet_30_multchannel_skip.pth'):
        uni.main(_args(tiny_datasets, tmp_path / 'o', '--authors', str(tmp_path)))
    with pytest.raises(OptionError, match='data folder not found: .*nowhere'):
        uni.main(_args(tmp_path / 'nowhere', tmp_path / 'o'))


def test_noise_rows_are_the_named_noises():
    clean = np.full((32, 32, 3), 0.5, np.float32)
    g = uni.add_noise(clean, uni.NOISES['gauss25'][1], 0)
    assert abs((g - clean).std() - 25 / 255) < 0.01
    sp = uni.add_noise(clean, uni.NOISES['saltpepper5'][1], 0)
    hit = sp != clean
    assert abs(hit.mean() - 0.05) < 0.02 and set(np.unique(sp[hit])) <= {0.0, 1.0}
    p = uni.add_noise(clean, uni.NOISES['poisson30'][1], 0)
    assert np.allclose(p * 30, np.round(p * 30), atol=1e-4)  # Poisson(30 x) / 30
    assert np.array_equal(uni.add_noise(clean, uni.NOISES['speckle25'][1], 3),
                          uni.add_noise(clean, uni.NOISES['speckle25'][1], 3))


def test_oracle_search_finds_the_best_sigma():
    """A fake denoiser whose PSNR peaks at sigma 30 (0-255): the golden-section oracle lands within 3 %."""
    gt = np.zeros((8, 8, 3), np.float32)
    calls = []

    def fake(noisy, sigma):
        calls.append(sigma)
        return gt + 0.01 * (1 + abs(np.log(sigma / 30.0)))
    cb = type('Fake', (uni.CBM3D,), {'__call__': lambda self, noisy, sigma: fake(noisy, sigma)})(stub=True)
    _, best = cb.oracle(gt, gt)
    assert abs(best / 30.0 - 1) < 0.07
    assert len(calls) <= uni.ORACLE_STEPS


def test_crop_cache_survives_a_line_cut_by_a_kill(tmp_path):
    rec = {'row': 'gauss25', 'preset': 'fast', 'method': 'mpi_ours', 'image': 'a', 'config': 'w 2 it', 'psnr': 30.0}
    cache = uni.CropCache(str(tmp_path), resume=False)
    cache.add(rec)
    with open(tmp_path / 'crops.jsonl', 'a') as f:
        f.write('{"row": "gauss25", "pre')  # killed mid-write
    again = uni.CropCache(str(tmp_path), resume=True)
    assert list(again.done.values()) == [rec]
    again.add({**rec, 'image': 'b'})  # the next record lands on its own line
    assert len(uni.CropCache(str(tmp_path), resume=True).done) == 2
    assert not uni.CropCache(str(tmp_path), resume=False).done and not (tmp_path / 'crops.jsonl').exists()
