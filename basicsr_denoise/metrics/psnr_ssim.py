"""PSNR and SSIM with BasicSR semantics, plus the float mode both denoising papers report.

Two modes:

* ``float_mode=False`` (BasicSR): inputs are images in [0, 255] (normally uint8-valued,
  see :func:`basicsr_denoise.metrics.calculate_metric`), the maths is done in float64,
  the peak value is 255.
* ``float_mode=True`` (MPI and Noise2Score evaluation): inputs are float images in
  [0, 1]; they are clipped to [0, 1], not quantised, and the peak value (data range) is 1.

Channel order: this project keeps images in **RGB** order everywhere, whereas BasicSR's
metrics receive BGR images (from ``cv2.imread``/``tensor2img``). The Y channel used by
``test_y_channel=True`` is therefore computed with the RGB form of BasicSR's
``bgr2ycbcr(y_only=True)`` (ITU-R BT.601, studio swing):
``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` on the [0, 255] scale,
which gives exactly BasicSR's value for the same picture.
"""

import cv2
import numpy as np

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import METRIC_REGISTRY

# ITU-R BT.601 luma weights for RGB inputs in [0, 1] giving Y in [16, 235] (BasicSR's bgr2ycbcr reversed).
_Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966], dtype=np.float64)


def reorder_image(img, input_order='HWC'):
    """Return ``img`` as an (H, W, C) array.

    Args:
        img (ndarray): (H, W), (H, W, C) or (C, H, W) image.
        input_order (str): ``'HWC'`` or ``'CHW'``; ignored for 2-D images. Default: ``'HWC'``.

    Returns:
        ndarray: (H, W, C) view of ``img`` (C = 1 for gray images).
    """
    if input_order not in ('HWC', 'CHW'):
        raise OptionError(f"input_order must be 'HWC' or 'CHW', got {input_order!r}")
    img = np.asarray(img)
    if img.ndim == 2:
        return img[..., None]
    if img.ndim != 3:
        raise ValueError(f'expected a 2-D or 3-D image, got shape {img.shape}')
    if input_order == 'CHW':
        img = img.transpose(1, 2, 0)
    return img


def rgb_to_y(img, float_mode=False):
    """Y channel (BT.601, studio swing) of an RGB image; 1-channel images are returned as they are.

    Args:
        img (ndarray): (H, W, C) float64 image, RGB, in [0, 255] (``float_mode=False``) or [0, 1].
        float_mode (bool): Scale of ``img``: [0, 1] if True, [0, 255] otherwise. Default: False.

    Returns:
        ndarray: (H, W, 1) float64, Y in [16, 235] (or [16/255, 235/255] in float mode).

    Note:
        BasicSR's ``to_y_channel`` converts a BGR image in float32; here the image is RGB and the
        conversion is done in float64 (differences are below 1e-5 dB).
    """
    if img.shape[2] != 3:
        return img
    scale = 1.0 if float_mode else 255.0
    y = (img / scale) @ _Y_WEIGHTS_RGB + 16.0  # Y on the [0, 255] scale
    return (y * (scale / 255.0))[..., None]


def _prepare(img, img2, crop_border, input_order, test_y_channel, float_mode):
    """Shared input handling: shape check, reorder to HWC, float64, clip (float mode), crop, Y."""
    img = np.asarray(img)
    img2 = np.asarray(img2)
    if img.shape != img2.shape:
        raise ValueError(f'image shapes differ: {img.shape} vs {img2.shape}')
    if not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise OptionError(f'crop_border must be an integer >= 0, got {crop_border!r}')
    img = reorder_image(img, input_order).astype(np.float64)
    img2 = reorder_image(img2, input_order).astype(np.float64)
    if float_mode:
        img = np.clip(img, 0.0, 1.0)
        img2 = np.clip(img2, 0.0, 1.0)
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]
        if img.size == 0:
            raise ValueError(f'crop_border={crop_border} leaves no pixels of an image of shape {img2.shape}')
    if test_y_channel:
        img = rgb_to_y(img, float_mode)
        img2 = rgb_to_y(img2, float_mode)
    return img, img2


@METRIC_REGISTRY.register()
def calculate_psnr(img, img2, crop_border=0, input_order='HWC', test_y_channel=False, float_mode=False, **kwargs):
    """Peak signal-to-noise ratio (BasicSR's ``calculate_psnr``, with a float mode).

    Args:
        img (ndarray): Image, (H, W), (H, W, C) or (C, H, W), RGB; values in [0, 255]
            (``float_mode=False``) or float in [0, 1] (``float_mode=True``).
        img2 (ndarray): Reference image, same shape and range as ``img``.
        crop_border (int): Pixels cropped from each border before the computation. Default: 0.
        input_order (str): ``'HWC'`` or ``'CHW'``. Default: ``'HWC'``.
        test_y_channel (bool): Compare the BT.601 Y channel of RGB images only. Default: False.
        float_mode (bool): Inputs are float in [0, 1], clipped to [0, 1], data range 1 (the MPI and
            Noise2Score evaluation). If False, BasicSR's: inputs as they are, data range 255. Default: False.
        **kwargs: Ignored (BasicSR compatibility, e.g. ``better``).

    Returns:
        float: PSNR in dB; ``inf`` for identical images.
    """
    img, img2 = _prepare(img, img2, crop_border, input_order, test_y_channel, float_mode)
    mse = np.mean((img - img2) ** 2)
    if mse == 0:
        return float('inf')
    peak = 1.0 if float_mode else 255.0
    return float(10.0 * np.log10(peak * peak / mse))


def _ssim_channel(img, img2, data_range, window):
    """Mean SSIM of two (H, W) float64 images over the valid region of the window."""
    if window == 'gaussian':
        kernel = cv2.getGaussianKernel(11, 1.5)
        win = np.outer(kernel, kernel.transpose())
        cov_norm = 1.0  # population covariance (Wang et al. 2004, BasicSR)
    else:  # uniform, scikit-image's default
        win = np.full((7, 7), 1.0 / 49.0)
        cov_norm = 49.0 / 48.0  # sample covariance
    pad = win.shape[0] // 2
    if min(img.shape) < win.shape[0]:
        raise ValueError(f'SSIM needs images of at least {win.shape[0]}x{win.shape[0]} pixels, got {img.shape}')

    def filt(z):
        return cv2.filter2D(z, -1, win, borderType=cv2.BORDER_REFLECT)[pad:-pad, pad:-pad]

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu1, mu2 = filt(img), filt(img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = cov_norm * (filt(img * img) - mu1_sq)
    sigma2_sq = cov_norm * (filt(img2 * img2) - mu2_sq)
    sigma12 = cov_norm * (filt(img * img2) - mu1_mu2)
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return ssim_map.mean()


@METRIC_REGISTRY.register()
def calculate_ssim(img, img2, crop_border=0, input_order='HWC', test_y_channel=False, float_mode=False,
                   window='gaussian', **kwargs):
    """Structural similarity (Wang et al., "Image Quality Assessment: From Error Visibility to Structural
    Similarity", TIP 2004; BasicSR's ``calculate_ssim``, with a float mode and a uniform window).

    SSIM is computed per channel over the valid region of the window and averaged over channels.

    Args:
        img, img2, crop_border, input_order, test_y_channel, float_mode: As in :func:`calculate_psnr`
            (float mode: data range 1; otherwise BasicSR's data range 255).
        window (str): ``'gaussian'``: BasicSR's 11x11 Gaussian window (sigma 1.5), population
            covariance (= scikit-image with ``gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False``). ``'uniform'``: scikit-image's default
            ``structural_similarity`` (7x7 uniform window, sample covariance), which the MPI
            authors report ("SSIM with data range 1"). Default: ``'gaussian'``.
        **kwargs: Ignored (BasicSR compatibility, e.g. ``better``).

    Returns:
        float: Mean SSIM.
    """
    if window not in ('gaussian', 'uniform'):
        raise OptionError(f"window must be 'gaussian' or 'uniform', got {window!r}")
    img, img2 = _prepare(img, img2, crop_border, input_order, test_y_channel, float_mode)
    data_range = 1.0 if float_mode else 255.0
    ssims = [_ssim_channel(img[..., i], img2[..., i], data_range, window) for i in range(img.shape[2])]
    return float(np.mean(ssims))
