"""PSNR / SSIM against scikit-image and hand computation; ``calculate_metric`` from option blocks."""

import math

import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from basicsr_denoise.metrics import calculate_metric, calculate_psnr, calculate_ssim, quantize_uint8
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import METRIC_REGISTRY


def _pair(shape, seed=0, noise=20.0):
    """Two uint8-valued float64 images in [0, 255]: a random image and a noisy version of it."""
    rng = np.random.default_rng(seed)
    img2 = rng.integers(0, 256, shape).astype(np.float64)
    img = np.clip(img2 + rng.normal(0, noise, shape), 0, 255).round()
    return img, img2


def _sk_ssim_gauss(a, b, data_range):
    kw = dict(data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    return structural_similarity(a, b, channel_axis=-1 if a.ndim == 3 else None, **kw)


def _sk_ssim_default(a, b):
    return structural_similarity(a, b, data_range=1, channel_axis=-1 if a.ndim == 3 else None)


def test_registered():
    assert METRIC_REGISTRY.get('calculate_psnr') is calculate_psnr
    assert METRIC_REGISTRY.get('calculate_ssim') is calculate_ssim


@pytest.mark.parametrize('shape', [(32, 29, 3), (30, 33), (30, 33, 1)])
def test_uint8_mode_matches_skimage(shape):
    img, img2 = _pair(shape)
    assert calculate_psnr(img, img2) == pytest.approx(peak_signal_noise_ratio(img2, img, data_range=255), abs=1e-4)
    sk = _sk_ssim_gauss(img.squeeze(), img2.squeeze(), 255)
    assert calculate_ssim(img, img2) == pytest.approx(sk, abs=1e-4)


@pytest.mark.parametrize('shape', [(32, 29, 3), (30, 33)])
def test_float_mode_matches_skimage(shape):
    img, img2 = _pair(shape, seed=1)
    img, img2 = img / 255.0, img2 / 255.0
    img = img + 0.01  # some values leave [0, 1]: float mode clips them
    ref = np.clip(img, 0, 1)
    assert calculate_psnr(img, img2, float_mode=True) == pytest.approx(
        peak_signal_noise_ratio(img2, ref, data_range=1), abs=1e-4)
    assert calculate_ssim(img, img2, float_mode=True, window='uniform') == pytest.approx(
        _sk_ssim_default(ref, img2), abs=1e-4)
    assert calculate_ssim(img, img2, float_mode=True) == pytest.approx(_sk_ssim_gauss(ref, img2, 1), abs=1e-4)


def test_uniform_window_uint8_mode():
    img, img2 = _pair((20, 24, 3), seed=2)
    sk = structural_similarity(img, img2, data_range=255, channel_axis=-1)
    assert calculate_ssim(img, img2, window='uniform') == pytest.approx(sk, abs=1e-4)


def test_crop_border_and_chw():
    img, img2 = _pair((30, 34, 3), seed=3)
    c = 4
    ref_psnr = peak_signal_noise_ratio(img2[c:-c, c:-c], img[c:-c, c:-c], data_range=255)
    ref_ssim = _sk_ssim_gauss(img[c:-c, c:-c], img2[c:-c, c:-c], 255)
    assert calculate_psnr(img, img2, crop_border=c) == pytest.approx(ref_psnr, abs=1e-4)
    assert calculate_ssim(img, img2, crop_border=c) == pytest.approx(ref_ssim, abs=1e-4)
    chw, chw2 = img.transpose(2, 0, 1), img2.transpose(2, 0, 1)
    assert calculate_psnr(chw, chw2, crop_border=c, input_order='CHW') == pytest.approx(ref_psnr, abs=1e-10)
    assert calculate_ssim(chw, chw2, crop_border=c, input_order='CHW') == pytest.approx(ref_ssim, abs=1e-10)


def test_hand_computed_psnr():
    img2 = np.zeros((4, 4, 3))
    img = np.full((4, 4, 3), 10.0)  # MSE = 100
    assert calculate_psnr(img, img2) == pytest.approx(28.130803608679102, abs=1e-9)  # 10*log10(255^2/100)
    # float mode: MSE = 0.1^2 -> exactly 20 dB
    assert calculate_psnr(np.full((4, 4), 0.5), np.full((4, 4), 0.4), float_mode=True) == pytest.approx(20.0, abs=1e-9)
    assert calculate_psnr(img, img) == math.inf


def test_y_channel_is_bt601_of_rgb():
    img, img2 = _pair((24, 26, 3), seed=4)
    y, y2 = rgb2ycbcr(img / 255.0)[..., 0], rgb2ycbcr(img2 / 255.0)[..., 0]  # RGB input, Y in [16, 235]
    assert calculate_psnr(img, img2, test_y_channel=True) == pytest.approx(
        peak_signal_noise_ratio(y2, y, data_range=255), abs=1e-4)
    assert calculate_ssim(img, img2, test_y_channel=True) == pytest.approx(_sk_ssim_gauss(y, y2, 255), abs=1e-4)
    # BasicSR's bgr2ycbcr on the BGR version of the same picture gives the same Y
    bgr_y = (img[..., ::-1] / 255.0) @ np.array([24.966, 128.553, 65.481]) + 16.0
    np.testing.assert_allclose(bgr_y, y, atol=1e-9)
    # float mode: Y on the [0, 1] scale, data range 1
    assert calculate_psnr(img / 255, img2 / 255, test_y_channel=True, float_mode=True) == pytest.approx(
        peak_signal_noise_ratio(y2 / 255, y / 255, data_range=1), abs=1e-4)
    # the channel order matters: feeding BGR gives another value
    assert calculate_psnr(img[..., ::-1], img2[..., ::-1], test_y_channel=True) != pytest.approx(
        calculate_psnr(img, img2, test_y_channel=True), abs=1e-3)


def test_bad_inputs():
    img, img2 = _pair((16, 16, 3))
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_psnr(img, img2[:8])
    with pytest.raises(OptionError, match='input_order'):
        calculate_psnr(img, img2, input_order='WHC')
    with pytest.raises(OptionError, match='window'):
        calculate_ssim(img, img2, window='box')
    with pytest.raises(ValueError, match='at least 11x11'):
        calculate_ssim(img[:8, :8], img2[:8, :8])


def test_calculate_metric_quantises_unless_float_mode():
    rng = np.random.default_rng(5)
    gt = rng.random((20, 22, 3)).astype(np.float32)
    out = (gt + rng.normal(0, 0.1, gt.shape)).astype(np.float32)  # unclipped
    q, q2 = quantize_uint8(out), quantize_uint8(gt)
    assert set(np.unique(q)) <= set(range(256))
    data = {'img': out, 'img2': gt}
    opt = {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False, 'better': 'higher'}
    assert calculate_metric(data, opt) == pytest.approx(peak_signal_noise_ratio(q2, q, data_range=255), abs=1e-6)
    ref = peak_signal_noise_ratio(gt.astype(np.float64), np.clip(out, 0, 1).astype(np.float64), data_range=1)
    assert calculate_metric(data, {**opt, 'float_mode': True}) == pytest.approx(ref, abs=1e-6)
    ssim_opt = {'type': 'calculate_ssim', 'float_mode': True, 'window': 'uniform'}
    assert calculate_metric(data, ssim_opt) == pytest.approx(
        _sk_ssim_default(np.clip(out, 0, 1).astype(np.float64), gt.astype(np.float64)), abs=1e-4)
    assert opt['type'] == 'calculate_psnr'  # the option block is not modified


def test_calculate_metric_key_errors():
    data = {'img': np.zeros((12, 12, 3)), 'img2': np.zeros((12, 12, 3))}
    with pytest.raises(OptionError, match=r"opt.yml: val.metrics.psnr.crop: unknown option key for calculate_psnr"):
        calculate_metric(data, {'type': 'calculate_psnr', 'crop': 2}, key='val.metrics.psnr', source='opt.yml')
    with pytest.raises(OptionError, match="unknown metric type 'calculate_niqe'"):
        calculate_metric(data, {'type': 'calculate_niqe'}, key='val.metrics.niqe')
    with pytest.raises(OptionError, match="needs a 'type'"):
        calculate_metric(data, {'crop_border': 0}, key='val.metrics.psnr')
