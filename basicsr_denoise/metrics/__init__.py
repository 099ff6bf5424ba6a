"""Image-quality metrics, registered in ``METRIC_REGISTRY`` and built from ``val.metrics.<name>`` blocks."""

import inspect
from copy import deepcopy

import numpy as np

from basicsr_denoise.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import METRIC_REGISTRY, check_kwargs

__all__ = ['calculate_metric', 'calculate_psnr', 'calculate_ssim', 'quantize_uint8']

# Keys of a metric block that are metadata for the model (best-metric tracking), not metric arguments.
_META_KEYS = ('better',)


def quantize_uint8(img):
    """Quantise like BasicSR's ``tensor2img``: ``round(clip(x, 0, 1) * 255)``.

    Args:
        img (ndarray): Float image in [0, 1] (values outside are clipped).

    Returns:
        ndarray: float64 array with uint8 values in [0, 255].
    """
    return np.round(np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0) * 255.0)


def _strict_signature(fn):
    """A stand-in for ``fn`` whose signature lists only its named option keys (no ``img``/``**kwargs``).

    Metric functions take ``**kwargs`` for BasicSR compatibility, which would let any misspelt key
    through :func:`check_kwargs`; the stand-in makes the check strict.
    """
    params = [
        p for name, p in inspect.signature(fn).parameters.items()
        if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        and name not in ('img', 'img2')
    ]
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=None) for k in _META_KEYS]

    def proxy(**kwargs):  # pragma: no cover - never called
        return None

    proxy.__signature__ = inspect.Signature(params)
    proxy.__name__ = getattr(fn, '__name__', type(fn).__name__)
    return proxy


def calculate_metric(data, opt, key=None, source=None):
    """Compute one metric from its option block (BasicSR's ``calculate_metric``).

    Args:
        data (dict): ``{'img': output, 'img2': gt}``, each (H, W, C) or (H, W), RGB, float32 in [0, 1]
            (unclipped network output is fine).
        opt (dict): The metric's option block, e.g. ``{type: calculate_psnr, crop_border: 0,
            test_y_channel: false, float_mode: true}``. ``better`` (``higher`` or ``lower``) is for the
            model's best-value tracking, not the metric.
        key (str | None): Where the block sits in the option file (e.g. ``'val.metrics.psnr'``), for errors.
        source (str | None): The option file, for errors.

    Returns:
        float: The metric value.

    Note:
        Unless the block sets ``float_mode: true``, both images are first quantised to uint8 values in
        [0, 255] (``round(clip(x, 0, 1) * 255)``), exactly as BasicSR's ``tensor2img`` does before its
        metrics. In float mode they are passed as they are and the metric clips them to [0, 1].
    """
    if not isinstance(opt, dict) or 'type' not in opt:
        raise OptionError(f"{source + ': ' if source else ''}{key or 'metric block'}: needs a 'type' entry")
    opt = deepcopy(opt)
    metric_type = opt.pop('type')
    fn = METRIC_REGISTRY.get(metric_type, key=key, source=source)
    check_kwargs(_strict_signature(fn), opt, key=key, source=source)
    for k in _META_KEYS:
        opt.pop(k, None)
    float_mode = opt.get('float_mode', False)
    data = dict(data)
    if not float_mode:
        for k in ('img', 'img2'):
            if k in data:
                data[k] = quantize_uint8(data[k])
    return float(fn(**data, **opt))
