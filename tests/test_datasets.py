"""Datasets, transforms, the enlarged sampler and the loader builders."""

import logging
import os

import cv2
import numpy as np
import pytest
import torch

from basicsr_denoise.data import LOADER_KEYS, build_dataloader, build_dataset
from basicsr_denoise.data.sampler import EnlargedSampler, sample_seed
from basicsr_denoise.data.transforms import augment, pad_to_size, paired_random_crop, random_crop, split_index
from basicsr_denoise.utils.errors import DataError, OptionError


_NOISE_NAME = 'Gaussian'  # the real noise family (sigma on the 0-255 scale)


def _write(path, img):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if img.ndim == 3:
        img = img[..., ::-1]  # RGB -> BGR
    assert cv2.imwrite(str(path), np.ascontiguousarray(img))


def _rand(h, w, c=3, seed=0):
    shape = (h, w, c) if c > 1 else (h, w)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def pairs(tmp_path):
    """gt/ and lq/ folders of 3 pairs where lq = 255 - gt (so alignment is checkable)."""
    gt, lq = tmp_path / 'gt', tmp_path / 'lq'
    for i in range(3):
        img = _rand(20 + i, 24, seed=i)
        _write(gt / f'{i:02d}.png', img)
        _write(lq / f'{i:02d}_noisy.png', 255 - img)
    return str(gt), str(lq)


# ----------------------------------------------------------------------------- paired

def test_paired_matching_and_alignment(pairs):
    gt, lq = pairs
    ds = build_dataset({'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq, 'gt_size': 16,
                        'use_hflip': True, 'use_rot': True, 'filename_tmpl': '{}_noisy', 'phase': 'train',
                        'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0, 'use_shuffle': True})
    assert len(ds) == 3 and ds.phase == 'train'
    assert ds.paths[1] == {'gt_path': os.path.join(gt, '01.png'), 'lq_path': os.path.join(lq, '01_noisy.png')}
    for seed in range(5):
        item = ds[(1, seed)]
        assert item['gt'].shape == (3, 16, 16)
        torch.testing.assert_close(item['lq'], 1 - item['gt'], atol=1e-6, rtol=0)  # same crop and flips
    a, b = ds[(2, 11)], ds[(2, 11)]
    assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])  # deterministic given (idx, seed)
    assert any(not torch.equal(ds[(2, 11)]['gt'], ds[(2, s)]['gt']) for s in range(12, 16))


def test_paired_mismatch_reports_both_sides(tmp_path):
    gt, lq = tmp_path / 'gt', tmp_path / 'lq'
    for name in ['a', 'b', 'c', 'd', 'e', 'f']:
        _write(gt / f'{name}.png', _rand(8, 8))
    for name in ['a', 'b', 'x', 'y']:
        _write(lq / f'{name}.png', _rand(8, 8))
    with pytest.raises(DataError) as info:
        build_dataset({'type': 'PairedImageDataset', 'dataroot_gt': str(gt), 'dataroot_lq': str(lq)})
    msg = str(info.value)
    assert '\n' not in msg
    assert '4 of 6 gt images' in msg and 'c.png, d.png, e.png, ...' in msg and 'f.png' not in msg
    assert '2 of 4 lq images' in msg and 'x.png, y.png' in msg
    assert str(gt) in msg and str(lq) in msg


def test_paired_crop_larger_than_image_names_file(pairs):
    gt, lq = pairs
    ds = build_dataset({'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq, 'gt_size': 64,
                        'filename_tmpl': '{}_noisy'})
    with pytest.raises(DataError, match=r'00\.png.*smaller than gt_size 64'):
        ds[(0, 0)]


def test_missing_dataroots(tmp_path, pairs):
    gt, _ = pairs
    with pytest.raises(DataError, match=f"dataroot_lq: no such folder {tmp_path / 'nope'}"):
        build_dataset({'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': str(tmp_path / 'nope')})
    with pytest.raises(OptionError, match='dataroot_lq'):
        build_dataset({'type': 'PairedImageDataset', 'dataroot_gt': gt})
    with pytest.raises(OptionError, match='datasets.val.gt_szie'):
        build_dataset({'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': gt, 'gt_szie': 3},
                      key='datasets.val')


def test_single_image_dataset(tmp_path, pairs):
    _, lq = pairs
    ds = build_dataset({'type': 'SingleImageDataset', 'dataroot_lq': lq, 'name': 'noisy', 'phase': 'test'})
    item = ds[0]
    assert set(item) == {'lq', 'lq_path'} and item['lq'].shape == (3, 20, 24)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match=f"no image files .* in {tmp_path / 'empty'}"):
        build_dataset({'type': 'SingleImageDataset', 'dataroot_lq': str(tmp_path / 'empty')})


# ----------------------------------------------------------------------------- image folder

def test_image_folder_skips_corrupt_files(tmp_path, caplog):
    root = tmp_path / 'clean'
    _write(root / 'a' / 'good1.png', _rand(40, 40, seed=1))
    _write(root / 'b' / 'good2.jpg', _rand(40, 40, seed=2))
    (root / 'b' / 'bad.png').write_bytes(b'\x89PNG broken')
    ds = build_dataset({'type': 'ImageFolderDataset', 'dataroot_gt': str(root), 'gt_size': 16})
    assert [os.path.relpath(p, root) for p in ds.paths] == ['a/good1.png', 'b/bad.png', 'b/good2.jpg']
    bad = str(root / 'b' / 'bad.png')
    with caplog.at_level(logging.WARNING, logger='basicsr_denoise'):
        item = ds[(1, 5)]
        again = ds[(1, 5)]
    assert item['gt_path'] != bad and item['gt'].shape == (3, 16, 16)
    assert torch.equal(item['gt'], again['gt'])  # the replacement is deterministic too
    assert ds.num_skipped == 2 and ds.skipped == {bad}
    warnings = [r for r in caplog.records if 'bad.png' in r.getMessage()]
    assert len(warnings) == 1  # logged once per file


def test_image_folder_gray_to_rgb_and_padding(tmp_path):
    root = tmp_path / 'clean'
    gray = _rand(10, 12, c=1, seed=3)
    _write(root / 'g.png', gray)
    ds = build_dataset({'type': 'ImageFolderDataset', 'dataroot_gt': str(root), 'gt_size': 16})
    gt = ds[(0, 0)]['gt']
    assert gt.shape == (3, 16, 16)
    assert torch.equal(gt[0], gt[1]) and torch.equal(gt[1], gt[2])
    padded = pad_to_size(gray[..., None], 16)[..., 0]
    np.testing.assert_array_equal(padded[:10, :12], gray)
    np.testing.assert_array_equal(padded[10:, :12], gray[-2::-1][:6])  # reflect (no edge repeat)
    ds_small = build_dataset({'type': 'ImageFolderDataset', 'dataroot_gt': str(root), 'gt_size': 16,
                              'min_size': 11})
    with pytest.raises(DataError, match='none of the 1 images'):
        ds_small[(0, 0)]


def test_image_folder_empty_or_missing_names_path(tmp_path):
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    (tmp_path / 'empty' / 'sub' / 'readme.txt').write_text('x')
    with pytest.raises(DataError, match=f"dataroot_gt: no image files .* in {tmp_path / 'empty'}"):
        build_dataset({'type': 'ImageFolderDataset', 'dataroot_gt': str(tmp_path / 'empty')})
    with pytest.raises(DataError, match=f"dataroot_gt: no such folder {tmp_path / 'missing'}"):
        build_dataset({'type': 'ImageFolderDataset', 'dataroot_gt': str(tmp_path / 'missing')})


def test_image_folder_meta_info_list(tmp_path):
    root = tmp_path / 'clean'
    _write(root / 'x' / 'one.png', _rand(20, 20, seed=1))
    _write(root / 'two.png', _rand(20, 20, seed=2))
    meta = tmp_path / 'list.txt'
    meta.write_text('x/one.png\n')
    ds = build_dataset({'type': 'ImageFolderDataset', 'dataroot_gt': str(root), 'meta_info_file': str(meta),
                        'gt_size': 8})
    assert ds.paths == [os.path.join(str(root), 'x/one.png')]


# ----------------------------------------------------------------------------- synthetic noise

@pytest.fixture
def clean_dir(tmp_path):
    root = tmp_path / 'clean'
    _write(root / 'img0.png', _rand(20, 22, seed=0))
    _write(root / 'img1.png', _rand(20, 22, seed=1))
    return str(root)


def _noisy(clean_dir, **kw):
    opt = {'type': 'SyntheticNoisyDataset', 'dataroot_gt': clean_dir, 'noise': {'type': _NOISE_NAME, 'sigma': 25},
           'seed': 3}
    opt.update(kw)
    return build_dataset(opt)


def test_synthetic_noise_seeded_per_image(clean_dir):
    ds = _noisy(clean_dir)
    item = ds[1]
    expected = item['gt'] + 25 / 255. * torch.randn(item['gt'].shape, generator=torch.Generator().manual_seed(
        3 * 100003 + 1))
    assert torch.equal(item['lq'], expected)
    assert item['lq_path'] == item['gt_path'] == os.path.join(clean_dir, 'img1.png')
    # repeatable whatever the sample seed, the order and the dataset instance
    assert torch.equal(_noisy(clean_dir)[(1, 99)]['lq'], item['lq'])
    other = _noisy(clean_dir, seed=4)[1]
    assert not torch.equal(other['lq'], item['lq'])


def test_synthetic_fixed_noise_is_cropped_from_the_full_draw(clean_dir):
    full = _noisy(clean_dir)[(0, 0)]
    ds = _noisy(clean_dir, gt_size=8)
    rng = np.random.default_rng(42)
    top, left = int(rng.integers(0, 20 - 8 + 1)), int(rng.integers(0, 22 - 8 + 1))
    crop = ds[(0, 42)]
    assert torch.equal(crop['lq'], full['lq'][:, top:top + 8, left:left + 8])
    assert torch.equal(crop['gt'], full['gt'][:, top:top + 8, left:left + 8])


def test_synthetic_fresh_noise_and_gray(clean_dir):
    ds = _noisy(clean_dir, fixed_noise=False)
    a, b, c = ds[(0, 1)], ds[(0, 1)], ds[(0, 2)]
    assert torch.equal(a['lq'], b['lq']) and not torch.equal(a['lq'], c['lq'])
    gray = _noisy(clean_dir, color='gray')[0]
    assert gray['gt'].shape == (1, 20, 22)
    rgb = cv2.imread(os.path.join(clean_dir, 'img0.png'))[..., ::-1].astype(np.float32) / 255.
    np.testing.assert_allclose(gray['gt'][0].numpy(), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), atol=1e-6)
    with pytest.raises(OptionError, match='color'):
        _noisy(clean_dir, color='ycbcr')


def test_image_folder_dataroot_list_reads_each_folder(tmp_path):
    from basicsr_denoise.data.image_folder_dataset import ImageFolderDataset
    for sub, n in (('a', 2), ('b', 1)):
        for i in range(n):
            _write(tmp_path / sub / f'{i}.png', _rand(20, 22, seed=i))
    ds = ImageFolderDataset([str(tmp_path / 'a'), str(tmp_path / 'b')], gt_size=8)
    assert [os.path.relpath(p, str(tmp_path)) for p in ds.paths] == [
        os.path.join('a', '0.png'), os.path.join('a', '1.png'), os.path.join('b', '0.png')]
    with pytest.raises(OptionError, match='meta_info_file'):
        ImageFolderDataset([str(tmp_path / 'a'), str(tmp_path / 'b')], meta_info_file=str(tmp_path / 'm.txt'))


def test_synthetic_dataroot_list_concatenates_folders_in_order(tmp_path, clean_dir):
    other = tmp_path / 'more'
    _write(other / 'sub' / 'x.png', _rand(20, 22, seed=5))
    ds = _noisy([clean_dir, str(other)])
    assert [os.path.relpath(p, str(tmp_path)) for p in ds.paths] == [
        os.path.join('clean', 'img0.png'), os.path.join('clean', 'img1.png'), os.path.join('more', 'sub', 'x.png')]
    assert torch.equal(ds[1]['lq'], _noisy(clean_dir)[1]['lq'])  # the first folder's noise draws are unchanged
    with pytest.raises(OptionError, match='dataroot_gt: an empty list'):
        _noisy([])
    with pytest.raises(OptionError, match='LMDB'):
        _noisy([clean_dir + '.lmdb', str(other) + '.lmdb'])


# ----------------------------------------------------------------------------- transforms

def test_split_index_and_augment():
    idx, rng = split_index((4, 77))
    assert idx == 4 and rng.random() == np.random.default_rng(77).random()
    np.random.seed(5)
    _, r1 = split_index(2)
    np.random.seed(5)
    _, r2 = split_index(np.int64(2))
    assert r1.random() == r2.random()  # int indices follow numpy's global seed
    img = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    out, status = augment([img, img + 1], hflip=True, rotation=True, rng=np.random.default_rng(0),
                          return_status=True)
    ref = img
    if status[0]:
        ref = ref[:, ::-1]
    if status[1]:
        ref = ref[::-1]
    if status[2]:
        ref = ref.transpose(1, 0, 2)
    np.testing.assert_array_equal(out[0], ref)
    np.testing.assert_array_equal(out[1], ref + 1)
    same = augment(img, False, False, np.random.default_rng(0))  # one array in, one array out; no flip drawn
    assert isinstance(same, np.ndarray)
    np.testing.assert_array_equal(same, img)
    with pytest.raises(DataError, match='x.png'):
        random_crop(img, 3, np.random.default_rng(0), path='x.png')
    g, q = paired_random_crop([img], [img * 2], 2, np.random.default_rng(1))
    np.testing.assert_array_equal(q[0], g[0] * 2)


# ----------------------------------------------------------------------------- sampler

def test_sampler_ranks_partition_the_enlarged_epoch():
    n, ratio, world = 10, 2, 3
    samplers = [EnlargedSampler(n, world, r, ratio, shuffle=True, seed=7) for r in range(world)]
    for s in samplers:
        s.set_epoch(3)
    per_rank = [list(s) for s in samplers]
    assert all(len(p) == len(s) == 7 for p, s in zip(per_rank, samplers))  # ceil(20 / 3)
    positions = {}
    for r, items in enumerate(per_rank):
        for i, (idx, seed) in enumerate(items):
            positions[r + i * world] = (idx, seed)
    assert sorted(positions) == list(range(21))  # every position of the epoch exactly once
    assert all(seed == sample_seed(7, 3, pos) for pos, (_, seed) in positions.items())
    counts = np.bincount([idx for idx, _ in positions.values()], minlength=n)
    assert counts.sum() == 21 and counts.min() >= 2 and counts.max() <= 3  # 2 passes + 1 padding sample
    assert len({seed for _, seed in positions.values()}) == 21
    single = EnlargedSampler(n, 1, 0, ratio, seed=7)
    single.set_epoch(4)
    assert [i for i, _ in single] != [i for i, _ in EnlargedSampler(n, 1, 0, ratio, seed=7)]  # epochs differ


def test_sampler_set_start_skips_exactly():
    s = EnlargedSampler(9, 2, 1, 1, seed=1)
    s.set_epoch(2)
    full = list(s)
    s.set_start(3)
    s.set_epoch(2)  # same epoch: start kept (train loops call set_epoch again)
    assert list(s) == full[3:]
    assert len(s) == 5
    s.set_epoch(3)
    assert s.start == 0 and len(list(s)) == 5


# ----------------------------------------------------------------------------- loaders

def test_dataloader_is_exact_across_workers_and_keeps_global_rng(pairs):
    gt, lq = pairs
    opt = {'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq, 'gt_size': 8, 'use_hflip': True,
           'use_rot': True, 'filename_tmpl': '{}_noisy', 'phase': 'train', 'batch_size_per_gpu': 2,
           'num_worker_per_gpu': 0, 'dataset_enlarge_ratio': 2}
    assert set(opt) & set(LOADER_KEYS) == {'phase', 'batch_size_per_gpu', 'num_worker_per_gpu',
                                           'dataset_enlarge_ratio'}
    ds = build_dataset(opt)
    batches = {}
    for workers in (0, 2):
        sampler = EnlargedSampler(len(ds), 1, 0, 2, seed=5)
        sampler.set_epoch(1)
        loader = build_dataloader(ds, dict(opt, num_worker_per_gpu=workers, persistent_workers=False), num_gpu=0,
                                  sampler=sampler, seed=5)
        state = torch.get_rng_state()
        batches[workers] = [b['gt'] for b in loader]
        assert torch.equal(state, torch.get_rng_state())  # iterating never touches the global torch RNG
    assert len(batches[0]) == 3  # 6 samples, batch 2, drop_last
    assert all(torch.equal(a, b) for a, b in zip(batches[0], batches[2]))
    val = build_dataloader(ds, {'phase': 'val', 'batch_size_per_gpu': 4})
    assert val.batch_size == 1 and val.num_workers == 0
