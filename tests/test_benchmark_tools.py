"""SIDD and DND benchmark files and tools, end to end on tiny synthetic files (tiny random network)."""

import json
import os

import numpy as np
import pytest
import yaml

from basicsr_denoise.data.sidd_dnd import (bundle_dnd_submission, dnd_blocks, read_dnd_image, read_dnd_info,
                                            read_sidd_blocks, read_sidd_submission, write_dnd_block,
                                            write_sidd_submission)
from basicsr_denoise.utils.errors import DataError

from _framework import load_tool  # noqa: E402

scipy_io = pytest.importorskip('scipy.io')  # the 'bench' extra
pytest.importorskip('h5py')

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))

TINY_OPT = {
    'name': 'tiny',
    'network_g': {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'singlechannel',
                  'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 3}},
    'fill': {'iterations': 2, 'mask_ratio': [90, 90], 'shuffle': 2, 'progress': False, 'pad_multiple': 1, 'seed': 0},
}


@pytest.fixture
def tiny_opt(tmp_path):
    path = tmp_path / 'tiny.yml'
    path.write_text(yaml.safe_dump(TINY_OPT))
    return str(path)


@pytest.fixture
def sidd_files(tmp_path):
    """(noisy, gt) SIDD-like block files: (2, 2, 40, 40, 3) uint8."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40] / 40.0
    clean = np.stack([xx, yy, (xx + yy) / 2], -1)
    gt = np.stack([np.stack([clean * (0.5 + 0.1 * (2 * i + j)) for j in range(2)]) for i in range(2)])
    noisy = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    gt_u8, noisy_u8 = (np.round(gt * 255).astype(np.uint8), np.round(noisy * 255).astype(np.uint8))
    noisy_path, gt_path = tmp_path / 'ValidationNoisyBlocksSrgb.mat', tmp_path / 'ValidationGtBlocksSrgb.mat'
    scipy_io.savemat(noisy_path, {'ValidationNoisyBlocksSrgb': noisy_u8})
    scipy_io.savemat(gt_path, {'ValidationGtBlocksSrgb': gt_u8})
    return str(noisy_path), str(gt_path), noisy_u8


def write_dnd(root, images, boxes):
    """A DND-like v7.3 layout: ``info.mat`` (struct ``info``, ``boundingboxes`` = object references to
    MATLAB ``blocks x 4`` arrays stored transposed) and ``images_srgb/NNNN.mat`` (``InoisySRGB`` transposed)."""
    import h5py
    os.makedirs(os.path.join(root, 'images_srgb'), exist_ok=True)
    with h5py.File(os.path.join(root, 'info.mat'), 'w') as f:
        refs_group = f.create_group('#refs#')
        refs = []
        for i, b in enumerate(boxes):
            ds = refs_group.create_dataset(f'b{i}', data=np.asarray(b, np.float64).T)  # MATLAB (blocks, 4)
            refs.append(ds.ref)
        info = f.create_group('info')
        info.attrs['MATLAB_class'] = np.bytes_('struct')
        info.create_dataset('boundingboxes', data=np.array([refs], dtype=h5py.ref_dtype))  # (1, images)
    for i, img in enumerate(images):
        with h5py.File(os.path.join(root, 'images_srgb', '%04d.mat' % (i + 1)), 'w') as f:
            f.create_dataset('InoisySRGB', data=np.asarray(img, np.float64).T)  # MATLAB (H, W, 3)


@pytest.fixture
def dnd_root(tmp_path):
    rng = np.random.default_rng(1)
    images = [rng.uniform(0.2, 0.8, (48, 64, 3)) for _ in range(2)]
    boxes = [np.array([[1, 1, 40, 40], [5, 21, 44, 60]]), np.array([[9, 1, 48, 40], [1, 25, 40, 64]])]
    root = tmp_path / 'DND'
    write_dnd(str(root), images, boxes)
    return str(root), images, boxes


# ----------------------------------------------------------------------------------------- file formats


def test_read_sidd_blocks(sidd_files):
    noisy_path, _, noisy_u8 = sidd_files
    blocks = read_sidd_blocks(noisy_path)
    assert blocks.shape == (2, 2, 40, 40, 3) and blocks.dtype == np.float32
    np.testing.assert_allclose(blocks, noisy_u8 / 255.0, atol=1e-6)
    assert read_sidd_blocks(noisy_path, key='ValidationNoisyBlocksSrgb').shape == blocks.shape
    with pytest.raises(DataError, match='NoSuchKey'):
        read_sidd_blocks(noisy_path, key='NoSuchKey')


def test_read_sidd_blocks_v73(tmp_path, sidd_files):
    import h5py
    _, _, noisy_u8 = sidd_files
    path = tmp_path / 'v73.mat'
    with h5py.File(path, 'w') as f:
        f.create_dataset('BenchmarkNoisyBlocksSrgb', data=noisy_u8.transpose())  # MATLAB stores it reversed
    np.testing.assert_allclose(read_sidd_blocks(str(path)), noisy_u8 / 255.0, atol=1e-6)


def test_read_sidd_blocks_bad_files(tmp_path):
    bad = tmp_path / 'corrupt.mat'
    bad.write_bytes(b'not a mat file at all' * 10)
    with pytest.raises(DataError, match='corrupt.mat'):
        read_sidd_blocks(str(bad))
    with pytest.raises(DataError, match='missing.mat'):
        read_sidd_blocks(str(tmp_path / 'missing.mat'))
    other = tmp_path / 'other.mat'
    scipy_io.savemat(other, {'x': np.zeros((4, 4), np.float32)})
    with pytest.raises(DataError, match='no 5-D uint8'):
        read_sidd_blocks(str(other))


def test_sidd_submission_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    den = rng.uniform(-0.1, 1.1, (2, 3, 8, 8, 3)).astype(np.float32)
    path = write_sidd_submission(den, str(tmp_path / 'SubmitSrgb.mat'), time_mp=1.5)
    mat = scipy_io.loadmat(path)
    cells = mat['DenoisedBlocksSrgb']
    assert cells.dtype == object and cells.shape == (2, 3)  # a MATLAB cell array
    assert all(c.shape == (8, 8, 3) and c.dtype == np.uint8 for c in cells.ravel())
    expected = np.clip(np.round(den.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(cells[1, 2], expected[1, 2])
    np.testing.assert_array_equal(read_sidd_submission(path), expected)
    assert mat['TimeMPSrgb'].item() == 1.5
    assert 'MethodName' in mat['OptionalData'].dtype.names  # a MATLAB struct


def test_dnd_reading(dnd_root):
    root, images, boxes = dnd_root
    info = read_dnd_info(os.path.join(root, 'info.mat'))
    assert len(info) == 2
    np.testing.assert_array_equal(info[1], boxes[1])
    img = read_dnd_image(os.path.join(root, 'images_srgb', '0002.mat'))
    assert img.shape == (48, 64, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img, images[1], atol=1e-6)
    crops = dnd_blocks(img, info[0])
    np.testing.assert_allclose(crops[1], images[1][4:44, 20:60], atol=1e-6)  # rows 5..44, cols 21..60
    with pytest.raises(DataError, match='does not fit'):
        dnd_blocks(img, np.array([[1, 1, 49, 40]]))


def test_dnd_write_and_bundle(tmp_path):
    out = str(tmp_path / 'dnd')
    for i in range(2):
        for k in range(3):
            write_dnd_block(np.full((4, 5, 3), 0.1 * (i + k)), out, i, k)
    assert sorted(os.listdir(out))[0] == '0001_01.mat'
    crop = scipy_io.loadmat(os.path.join(out, '0002_03.mat'))['Idenoised_crop']
    assert crop.dtype == np.float32 and crop.shape == (4, 5, 3)
    paths = bundle_dnd_submission(out)
    assert [os.path.basename(p) for p in paths] == ['0001.mat', '0002.mat']
    mat = scipy_io.loadmat(paths[1])
    assert mat['Idenoised'].shape == (1, 3) and mat['Idenoised'].dtype == object
    np.testing.assert_allclose(mat['Idenoised'][0, 2], 0.3, atol=1e-6)
    assert str(mat['eval_version'][0]) == '1.0' and int(mat['israw'].ravel()[0]) == 0
    os.remove(os.path.join(out, '0001_02.mat'))
    with pytest.raises(DataError, match='0001_02.mat'):
        bundle_dnd_submission(out)


# ------------------------------------------------------------------------------------------------ tools


def test_sidd_tool_limit(tmp_path, sidd_files, tiny_opt):
    noisy_path, gt_path, noisy_u8 = sidd_files
    out = str(tmp_path / 'sidd')
    tool = load_tool('sidd_benchmark')
    metrics = tool.main(['--blocks', noisy_path, '-opt', tiny_opt, '--out', out, '--gt', gt_path, '--limit', '3',
                         '--device', 'cpu'])
    sub = scipy_io.loadmat(os.path.join(out, 'SubmitSrgb.mat'))
    cells = sub['DenoisedBlocksSrgb']
    assert cells.shape == (2, 2) and cells.dtype == object
    assert all(c.shape == (40, 40, 3) and c.dtype == np.uint8 for c in cells.ravel())
    for idx in [(0, 0), (0, 1), (1, 0)]:  # the first 3 blocks (image-major) are denoised
        assert not np.array_equal(cells[idx], noisy_u8[idx])
    np.testing.assert_array_equal(cells[1, 1], noisy_u8[1, 1])  # past --limit: copied through
    assert sub['TimeMPSrgb'].item() > 0
    saved = json.load(open(os.path.join(out, 'metrics.json')))
    assert saved['limited'] is True and saved['num_processed'] == 3 and saved['num_blocks'] == 4
    assert isinstance(saved['psnr'], float) and np.isfinite(saved['psnr'])
    assert metrics['psnr'] == saved['psnr'] and saved['weights'] == 'random init'


def test_sidd_tool_is_deterministic(tmp_path, sidd_files, tiny_opt):
    noisy_path, _, _ = sidd_files
    tool = load_tool('sidd_benchmark')
    outs = []
    for run in range(2):
        out = str(tmp_path / f'run{run}')
        tool.main(['--blocks', noisy_path, '-opt', tiny_opt, '--out', out, '--limit', '1', '--device', 'cpu'])
        outs.append(read_sidd_submission(os.path.join(out, 'SubmitSrgb.mat')))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_sidd_tool_errors(tmp_path, sidd_files, tiny_opt, capsys):
    noisy_path, _, _ = sidd_files
    tool = load_tool('sidd_benchmark')
    bad = tmp_path / 'BadBlocks.mat'
    bad.write_bytes(b'\x00garbage' * 40)
    with pytest.raises(SystemExit) as exc:
        tool.main(['--blocks', str(bad), '-opt', tiny_opt, '--out', str(tmp_path / 'o'), '--device', 'cpu'])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and 'BadBlocks.mat' in err and '\n' not in err
    with pytest.raises(SystemExit) as exc:
        tool.main(['--blocks', noisy_path, '-opt', tiny_opt, '--out', str(tmp_path / 'o'), '--device', 'cpu',
                   '--weights', str(tmp_path / 'no_such_weights.pth')])
    assert exc.value.code == 2 and 'no_such_weights.pth' in capsys.readouterr().err


def test_dnd_tool(tmp_path, dnd_root, tiny_opt):
    root, images, boxes = dnd_root
    out = str(tmp_path / 'dnd_out')
    tool = load_tool('dnd_benchmark')
    metrics = tool.main(['--data', root, '-opt', tiny_opt, '--out', out, '--limit', '3', '--device', 'cpu'])
    assert metrics['num_blocks'] == 4 and metrics['num_processed'] == 3 and metrics['limited'] is True
    names = sorted(n for n in os.listdir(out) if n.endswith('.mat'))
    assert names == ['0001_01.mat', '0001_02.mat', '0002_01.mat', '0002_02.mat']
    noisy_crops = [c for img, b in zip(images, boxes) for c in dnd_blocks(img.astype(np.float32), b)]
    for n, name in enumerate(names):
        crop = scipy_io.loadmat(os.path.join(out, name))['Idenoised_crop']
        assert crop.dtype == np.float32 and crop.shape == (40, 40, 3)
        if n < 3:
            assert np.abs(crop - noisy_crops[n]).max() > 1e-4  # denoised
        else:
            np.testing.assert_allclose(crop, noisy_crops[n], atol=1e-6)  # past --limit: copied through
    for i in range(2):
        mat = scipy_io.loadmat(os.path.join(out, 'bundled', '%04d.mat' % (i + 1)))
        assert mat['Idenoised'].shape == (1, 2) and mat['Idenoised'].dtype == object
        assert mat['Idenoised'][0, 1].shape == (40, 40, 3)
        assert str(mat['eval_version'][0]) == '1.0'
    # --resume keeps the denoised blocks and redoes nothing
    metrics = tool.main(['--data', root, '-opt', tiny_opt, '--out', out, '--limit', '3', '--device', 'cpu',
                         '--resume'])
    assert metrics['num_kept_from_resume'] == 3 and metrics['num_denoised_now'] == 0


def test_dnd_tool_errors(tmp_path, dnd_root, tiny_opt, capsys):
    root, _, _ = dnd_root
    tool = load_tool('dnd_benchmark')
    os.remove(os.path.join(root, 'images_srgb', '0002.mat'))
    with pytest.raises(SystemExit) as exc:
        tool.main(['--data', root, '-opt', tiny_opt, '--out', str(tmp_path / 'o'), '--limit', '0', '--device', 'cpu'])
    assert exc.value.code == 2 and '0002.mat' in capsys.readouterr().err
    with open(os.path.join(root, 'info.mat'), 'wb') as f:
        f.write(b'garbage' * 50)
    with pytest.raises(SystemExit) as exc:
        tool.main(['--data', root, '-opt', tiny_opt, '--out', str(tmp_path / 'o'), '--device', 'cpu'])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and 'info.mat' in err and err.startswith('error: ')


def test_fill_speed_bench_times_combined_variants_on_rectangles(tmp_path, capsys):
    bench = load_tool('bench_fill_speed')
    out = tmp_path / 'speed.json'
    bench.main(['--sizes', '64,64x96', '--threads', '1', '--steps', '1', '--repeats', '1', '--variants',
                'bf16+channels_last,bf16+channels_last+torchmods', '--out', str(out)])
    res = json.load(open(out))
    assert [r['size'] for r in res['sizes']] == ['64', '64x96']
    for r in res['sizes']:
        assert set(r['ratio_variant_over_bare']) == {'bf16+channels_last', 'bf16+channels_last+torchmods'}
        assert all(v > 0 for v in r['ms'].values())
    assert '64x96: bare' in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown option 'fp8'"):
        bench.main(['--sizes', '64', '--steps', '1', '--repeats', '1', '--variants', 'bf16+fp8'])
