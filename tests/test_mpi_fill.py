"""MPI zero-shot filling: ensemble maths, determinism, shuffling/tiling, test.py and the denoise command."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from basicsr_denoise.archs import build_network
from basicsr_denoise.mpi.fill_config import FillConfig
from basicsr_denoise.mpi.filling import (IterativeFiller, ensemble_update, masked_fill_loss, pixel_shuffle_batch,
                                         pixel_unshuffle_batch, tile_boxes)
from basicsr_denoise.mpi.masking import MaskSampler
from basicsr_denoise.test import test_pipeline as run_test_pipeline
from basicsr_denoise.utils.errors import CheckpointError, DataError
from basicsr_denoise.utils.img_util import imread, imwrite
from basicsr_denoise.utils.options import load_yaml

from _framework import REPO, load_tool  # noqa: E402

SKIP_NET = {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel', 'backbone': {'type': 'SkipNet'}}
TINY_NET = {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel',
            'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 3}}


def test_ensemble_update_hand_computed_4x4():
    ybar = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    pred = torch.full((1, 1, 4, 4), 100.0)
    keep = torch.ones(1, 1, 4, 4)
    keep[0, 0, 0, 1] = keep[0, 0, 2, 3] = keep[0, 0, 3, 0] = 0  # three hidden pixels
    out = ensemble_update(ybar.clone(), pred, keep, beta=0.9)
    expected = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    expected[0, 0, 0, 1] = 0.9 * 1 + 0.1 * 100  # 10.9
    expected[0, 0, 2, 3] = 0.9 * 11 + 0.1 * 100  # 19.9
    expected[0, 0, 3, 0] = 0.9 * 12 + 0.1 * 100  # 20.8
    assert torch.allclose(out, expected, atol=1e-5)
    changed = (out != ybar)
    assert changed.sum() == 3 and bool(changed[keep == 0].all())


def test_ensemble_update_shared_mask_broadcasts_over_channels():
    ybar = torch.zeros(1, 3, 2, 2)
    keep = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])  # (1, 1, 2, 2)
    out = ensemble_update(ybar, torch.ones(1, 3, 2, 2), keep, beta=0.5)
    assert torch.equal(out[:, :, 0, 1], torch.full((1, 3), 0.5)) and out.sum() == 1.5


def test_masked_fill_loss_is_mean_over_all_elements_of_hidden_errors():
    x = torch.zeros(1, 1, 2, 2)
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    keep = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert masked_fill_loss(pred, x, keep).item() == pytest.approx((4 + 16) / 4)


def test_pixel_unshuffle_batch_round_trip_and_layout():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 6)
    y = pixel_unshuffle_batch(x, 2)
    assert y.shape == (4, 2, 2, 3)
    assert torch.equal(y[1, 0], x[0, 0, 0::2, 1::2])  # sub-image k = (dy, dx) = (0, 1)
    assert torch.equal(pixel_shuffle_batch(y, 2), x)


def test_tile_boxes_cover_with_overlap():
    boxes = tile_boxes(300, 128, 32)
    assert boxes[0] == 0 and boxes[-1] == 300 - 128
    assert all(b - a <= 128 - 32 for a, b in zip(boxes, boxes[1:]))
    assert tile_boxes(100, 128, 32) == [0]


def _filler(**kw):
    kw.setdefault('iterations', 3)
    return IterativeFiller(MaskSampler((30, 30)), FillConfig.from_block({'progress': False, **kw}))


def test_fixed_seed_gives_identical_output_and_template_untouched():
    torch.manual_seed(0)
    net = build_network(TINY_NET)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 3, 24, 20)
    run = lambda seed: _filler()(net, x, torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # fresh copy per image


def test_output_is_the_ensemble_not_the_network_output():
    torch.manual_seed(0)
    net = build_network(TINY_NET)
    x = torch.rand(1, 3, 16, 16)
    out = _filler(iterations=1, beta=0.9)(net, x, torch.Generator().manual_seed(0))
    # after one step with beta 0.9, kept pixels equal x exactly and hidden ones moved 10 % of the way
    same = (out == x).float().mean().item()
    assert 0.6 < same < 0.8


def test_shuffle_tiling_gray_and_small_images_keep_the_size():
    torch.manual_seed(0)
    net = build_network({**TINY_NET, 'mask_mode': 'singlechannel'})
    x = torch.rand(1, 3, 45, 70)
    f = IterativeFiller(MaskSampler((90, 90), mode='singlechannel'),
                        FillConfig(iterations=2, shuffle=2, tile_size=16, tile_overlap=4, progress=False))
    assert f(net, x, torch.Generator().manual_seed(0)).shape == x.shape
    gray = torch.rand(1, 1, 20, 20)
    assert f(net, gray, torch.Generator().manual_seed(0)).shape == gray.shape
    skip = build_network(SKIP_NET)  # needs >= 33 px: padding handles a 20x20 image
    assert _filler(iterations=1)(skip, torch.rand(1, 3, 20, 20), torch.Generator().manual_seed(0)).shape[-1] == 20
    with pytest.raises(DataError, match='has 2 channels but the network takes 3'):
        _filler()(build_network(TINY_NET), torch.rand(1, 2, 8, 8), torch.Generator())


# ----------------------------------------------------------------------------------------------- test.py


def _write_pair_folder(tmp_path, n=2, size=32):
    rng = np.random.default_rng(0)
    gt_dir, lq_dir = tmp_path / 'gt', tmp_path / 'noisy'
    gt_dir.mkdir()
    lq_dir.mkdir()
    for i in range(n):
        yy, xx = np.mgrid[0:size, 0:size] / size
        clean = np.stack([xx, yy, (xx + yy) / 2], -1).astype(np.float32)
        np.save(gt_dir / f'{i}.npy', clean)
        np.save(lq_dir / f'{i}.npy', (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32))
    return gt_dir, lq_dir


def _fill_options(tmp_path, gt_dir, lq_dir, weights=None, net=SKIP_NET):
    opt = load_yaml(os.path.join(REPO, 'options', 'test', 'MPI', 'test_MPI_syn_gauss25_fast.yml'))  # _base_ resolved
    opt['datasets'] = {'test_1': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(gt_dir),
                                  'dataroot_lq': str(lq_dir)}}
    opt['network_g'] = net
    opt['path']['pretrain_network_g'] = weights
    opt['fill'].update(iterations=5, progress=False)
    path = tmp_path / 'fill.yml'
    path.write_text(yaml.safe_dump(opt))
    return str(path)


def test_test_py_end_to_end_32x32(tmp_path):
    gt_dir, lq_dir = _write_pair_folder(tmp_path)
    opt = _fill_options(tmp_path, gt_dir, lq_dir)
    res = run_test_pipeline(root_path=str(tmp_path), argv=['-opt', opt])
    metrics = json.load(open(tmp_path / 'results' / 'MPI_syn_gauss25_fast' / 'metrics.json'))
    assert metrics == json.loads(json.dumps(res))
    tiny = metrics['tiny']
    assert tiny['count'] == 2 and [r['name'] for r in tiny['images']] == ['0', '1']
    assert set(tiny['images'][0]) == {'name', 'psnr', 'ssim', 'seconds', 'rank'}
    assert tiny['mean']['psnr'] == pytest.approx(np.mean([r['psnr'] for r in tiny['images']]))
    vis = tmp_path / 'results' / 'MPI_syn_gauss25_fast' / 'visualization' / 'tiny'
    assert (vis / '0.png').exists() and (vis / '0_compare.png').exists()
    compare = imread(vis / '0_compare.png')
    assert compare.shape[1] >= 3 * 32  # noisy | denoised | clean


@pytest.mark.slow  # a subprocess
def test_test_py_without_ground_truth_still_saves(tmp_path):
    _, lq_dir = _write_pair_folder(tmp_path)
    opt = yaml.safe_load(open(_fill_options(tmp_path, tmp_path, lq_dir)))
    opt['datasets'] = {'test_1': {'name': 'nogt', 'type': 'SingleImageDataset', 'dataroot_lq': str(lq_dir)}}
    (tmp_path / 'nogt.yml').write_text(yaml.safe_dump(opt))
    res = run_test_pipeline(root_path=str(tmp_path), argv=['-opt', str(tmp_path / 'nogt.yml')])
    assert res['nogt']['count'] == 2 and 'psnr' not in res['nogt']['images'][0]
    assert (tmp_path / 'results' / 'MPI_syn_gauss25_fast' / 'visualization' / 'nogt' / '1.png').exists()


def _run_cli(module_args, cwd):
    return subprocess.run([sys.executable, *module_args], cwd=str(cwd), capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'PYTHONPATH': REPO, 'OMP_NUM_THREADS': '1'})


def test_checkpoint_mismatch_error_suggests_mask_mode(tmp_path):
    gt_dir, lq_dir = _write_pair_folder(tmp_path, n=1)
    ckpt = tmp_path / 'single.pth'
    torch.save({'params': build_network({**SKIP_NET, 'mask_mode': 'singlechannel'}).state_dict()}, ckpt)
    opt = _fill_options(tmp_path, gt_dir, lq_dir, weights=str(ckpt))
    proc = _run_cli([os.path.join(REPO, 'basicsr_denoise', 'test.py'), '-opt', opt], tmp_path)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error:') and str(ckpt) in last and 'singlechannel' in last


def test_nan_input_names_the_file(tmp_path):
    gt_dir, lq_dir = _write_pair_folder(tmp_path, n=1)
    bad = np.load(lq_dir / '0.npy')
    bad[3, 3, 0] = np.nan
    np.save(lq_dir / '0.npy', bad)
    opt = _fill_options(tmp_path, gt_dir, lq_dir)
    proc = _run_cli([os.path.join(REPO, 'basicsr_denoise', 'test.py'), '-opt', opt], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f'error: cannot read image {lq_dir / "0.npy"}')


# ------------------------------------------------------------------------------------------ denoise command


@pytest.fixture
def skip_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'w.pth'
    torch.save({'params': build_network(SKIP_NET).state_dict()}, path)
    return str(path)


def test_denoise_command_any_depth_and_channels(tmp_path, skip_weights):
    inp = tmp_path / 'photos'
    rng = np.random.default_rng(0)
    imwrite(rng.random((32, 40, 3)).astype(np.float32), str(inp / 'rgb8.png'))
    imwrite(rng.random((36, 30, 1)).astype(np.float32), str(inp / 'gray16.png'), bit_depth=16)
    (inp / 'notes.txt').write_text('not an image')
    out = tmp_path / 'out'
    proc = _run_cli(['-m', 'basicsr_denoise', str(inp), '-o', str(out), '--weights', skip_weights,
                     '--iterations', '3', '--device', 'cpu'], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'rgb8: 40x32x3 8-bit' in proc.stdout and 'gray16: 30x36x1 16-bit' in proc.stdout
    assert 'done: 2 image(s)' in proc.stdout
    import cv2
    g = cv2.imread(str(out / 'gray16_denoised.png'), cv2.IMREAD_UNCHANGED)
    assert g.dtype == np.uint16 and g.shape == (36, 30)
    c = cv2.imread(str(out / 'rgb8_denoised.png'), cv2.IMREAD_UNCHANGED)
    assert c.dtype == np.uint8 and c.shape == (32, 40, 3)
    assert (out / 'rgb8_compare.png').exists()
    metrics = json.load(open(out / 'metrics.json'))
    assert metrics['count'] == 2 and metrics['images'][0]['seconds'] > 0 and metrics['failed'] == []


def test_denoise_command_with_gt_and_unreadable_file(tmp_path, skip_weights):
    inp, gt = tmp_path / 'in', tmp_path / 'gt'
    clean = np.random.default_rng(1).random((32, 32, 3)).astype(np.float32)
    imwrite(clean, str(gt / 'a.png'))
    imwrite(np.clip(clean + 0.1, 0, 1), str(inp / 'a.png'))
    (inp / 'broken.png').write_bytes(b'\x89PNG not really')
    out = tmp_path / 'out'
    proc = _run_cli(['-m', 'basicsr_denoise', str(inp), '-o', str(out), '--weights', skip_weights,
                     '--gt', str(gt), '--iterations', '2'], tmp_path)
    assert proc.returncode == 1
    assert f'error: cannot read image {inp / "broken.png"}' in proc.stderr
    assert 'PSNR' in proc.stdout and '1 failed' in proc.stdout
    metrics = json.load(open(out / 'metrics.json'))
    assert 'psnr' in metrics['images'][0] and metrics['failed'] == [str(inp / 'broken.png')]


def test_denoise_without_default_weights_says_how_to_get_them(monkeypatch):
    import basicsr_denoise.weights as weights
    entries = {**weights.registry(), 'MPI_future_ours.pth': {
        'sha256': None, 'recipe': 'options/train/MPI/pretrain_MPI_real_imagenet.yml'}}
    monkeypatch.setattr(weights, 'registry', lambda: entries)
    with pytest.raises(CheckpointError, match='pass --weights PATH .* or train it with python basicsr_denoise/train.py '
                       '-opt options/train/MPI/pretrain_MPI_real_imagenet.yml'):
        weights.resolve_weights('MPI_future_ours.pth')  # registered but not shipped (yet)


def test_denoise_missing_input_is_one_line_error(tmp_path):
    proc = _run_cli(['-m', 'basicsr_denoise', str(tmp_path / 'nope.png'), '-o', str(tmp_path / 'o')], tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == f'error: input not found: {tmp_path / "nope.png"}'


def test_demo_tool_end_to_end(tmp_path, skip_weights):
    demo = load_tool('demo')
    import shutil
    samples = tmp_path / 'samples'  # the four shipped samples
    samples.mkdir()
    for name in ('kodim05_crop', 'kodim08_crop', 'kodim19_gray_crop', 'kodim23_crop'):
        shutil.copy(os.path.join(REPO, 'datasets', 'samples', name + '.png'), samples)
    res = demo.main(['--samples', str(samples), '--out', str(tmp_path / 'demo'), '--weights', skip_weights,
                     '--iterations', '2'])
    assert res['count'] == 4 and res['failed'] == []
    assert {r['name'] for r in res['images']} == {'kodim05_crop', 'kodim08_crop', 'kodim19_gray_crop', 'kodim23_crop'}
    gray = next(r for r in res['images'] if r['name'] == 'kodim19_gray_crop')
    assert gray['channels'] == 1 and 19 < gray['psnr_noisy'] < 22  # sigma 25 on 8 bits: about 20.5 dB
    panel = imread(tmp_path / 'demo' / 'denoised' / 'kodim05_crop_compare.png')
    assert panel.shape[1] >= 3 * 128  # noisy | denoised | clean


class _MaskSpy(torch.nn.Module):
    """A MaskedNet stand-in that records the masks it is given (in a module-level list)."""

    seen = []
    in_ch, mask_channels, mask_mode = 3, 3, 'multchannel'

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, mask):
        _MaskSpy.seen.append(mask.detach().clone())
        return x * mask + self.w


def test_gray_image_on_colour_network_shares_one_mask_across_copies():
    _MaskSpy.seen.clear()
    _filler(iterations=3)(_MaskSpy(), torch.rand(1, 1, 16, 16), torch.Generator().manual_seed(0))
    assert len(_MaskSpy.seen) == 3
    for m in _MaskSpy.seen:  # each hidden pixel is hidden in all three copies: its noisy value cannot leak
        assert m.shape[:2] == (1, 3) and torch.equal(m[:, 0], m[:, 1]) and torch.equal(m[:, 1], m[:, 2])
    _MaskSpy.seen.clear()
    _filler(iterations=1)(_MaskSpy(), torch.rand(1, 3, 16, 16), torch.Generator().manual_seed(0))
    assert not torch.equal(_MaskSpy.seen[0][:, 0], _MaskSpy.seen[0][:, 1])  # colour input: per-channel masks
