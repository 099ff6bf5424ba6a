"""Blind Noise2Score: estimate the unknown noise level of an image, then apply Tweedie's step.

Kim & Ye, "Noise2Score: Tweedie's Approach to Self-Supervised Image Denoising without Clean
Images", NeurIPS 2021, Sec. 4 (blind denoising): the score network ``R`` is trained on the noisy
images only and does not know the level; at test time the authors try every level of a grid and
keep the one whose Tweedie estimate ``xhat`` has the smallest total variation.

:func:`estimate_level` is the single entry point, used by ``ScoreModel`` in validation and test.
Methods (``method=``):

* ``'tv_grid'`` (the authors'): grid search over ``noise.grid()`` with the Charbonnier
  total-variation score :func:`tv_charbonnier`.
* ``'tv_golden'``: ``'tv_grid'``, then a golden-section search of the same criterion inside the
  bracket of grid neighbours of the best grid level (``refine_iters`` steps shrink the bracket by
  ``0.618**refine_iters``; 12 steps turn the step-5 sigma grid into a ~0.02 resolution). Cheap for
  Gaussian and Gamma, whose network input does not depend on the level (the network runs once).
* ``'mad'`` (Gaussian only): Donoho & Johnstone's robust estimator, ``sigma = median(|HH1|) / 0.6745``
  of the finest diagonal Haar wavelet coefficients of the noisy image itself (no network call
  for the estimate; one for the denoising). Slightly biased upwards on textured images.
* ``'pca'`` (Gaussian only): the patch-PCA estimator of Chen, Zhu & Heng, "An Efficient Statistical
  Method for Image Noise Level Estimation", ICCV 2015 (in the line of Liu, Tanaka & Okutomi,
  "Single-image noise level estimation for blind denoising", TIP 2013): the noise variance is the
  mean of the smallest eigenvalues of the covariance of 7x7(xC) patches, taking the largest set whose
  mean equals its median. Usually the most accurate of the four on natural images.

The network call is cached: a level whose :meth:`NoiseModel.network_input` equals the previous one
reuses the previous score, so Gaussian and Gamma cost one network evaluation for the whole grid,
Poisson (input ``y / eta``) one per level tried. No method names a noise family except the two
Gaussian-only estimators, which check ``noise.param_name == 'sigma'`` and its ``std`` attribute.

Note:
    The exact form of the authors' TV score is not specified beyond "total variation (Charbonnier)";
    :func:`tv_charbonnier` is the anisotropic form with ``eps = 1e-3`` on the unclipped ``xhat``
    (configurable: ``score.tv_eps``). The TV score is not scale invariant: an ``xhat`` that is
    uniformly darker scores lower. With an exact score this is harmless for Gaussian and Gamma
    noise (tested: the true sigma / k is recovered), but for Poisson an oracle score of a known
    clean image makes ``xhat`` proportional to ``eta``, so the search then drifts to the smallest
    ``eta`` of the grid; with a trained network the estimate depends on how it extrapolates.
    ``'tv_golden'`` never leaves the grid's range.
"""

import math

import torch
import torch.nn.functional as F

from basicsr_denoise.utils.errors import OptionError

#: Normal-consistency constant of the median absolute deviation: ``median(|N(0, 1)|)``.
MAD_CONSTANT = 0.6744897501960817


def tv_charbonnier(x, eps=1e-3, rows=256):
    """Anisotropic total variation with a Charbonnier penalty, per image.

    ``TV(x) = mean_{c,i,j} sqrt((x[c,i+1,j] - x[c,i,j])^2 + eps^2)
    + mean_{c,i,j} sqrt((x[c,i,j+1] - x[c,i,j])^2 + eps^2)`` (the two means over their own valid pairs).

    Args:
        x (Tensor): ``(B, C, H, W)`` images (any range; [0, 1] for the default ``eps``).
        eps (float): Charbonnier smoothing (makes the penalty differentiable at 0). Default: 1e-3.
        rows (int): Rows per block: the sums run block by block in float64, so memory stays at a few
            blocks whatever the image size (a 12-MP photo would otherwise need ~1.5 GB here). Default: 256.

    Returns:
        Tensor: ``(B,)`` float64 scores (smaller = smoother).
    """
    h, w = x.shape[-2:]
    e2 = float(eps) ** 2
    sum_h = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    sum_w = torch.zeros_like(sum_h)
    for top in range(0, h, rows):
        block = x[..., top:min(top + rows + 1, h), :].double()  # one row more: the vertical pairs across blocks
        dh = block[..., 1:, :] - block[..., :-1, :]
        sum_h += torch.sqrt(dh * dh + e2).flatten(1).sum(1)
        core = block[..., :min(rows, h - top), :]
        dw = core[..., :, 1:] - core[..., :, :-1]
        sum_w += torch.sqrt(dw * dw + e2).flatten(1).sum(1)
    c = x.shape[1]
    score = torch.zeros_like(sum_h)
    if h > 1 and w > 0:
        score = score + sum_h / (c * (h - 1) * w)
    if w > 1 and h > 0:
        score = score + sum_w / (c * h * (w - 1))
    return score


class _CachedScore:
    """Calls ``score_fn`` only when the network input changed since the last call."""

    def __init__(self, score_fn):
        self.score_fn = score_fn
        self.last_in = None
        self.last_out = None
        self.calls = 0

    def __call__(self, inp):
        if self.last_in is None or not (inp is self.last_in or (inp.shape == self.last_in.shape
                                                                 and torch.equal(inp, self.last_in))):
            self.last_out = self.score_fn(inp)
            self.last_in = inp
            self.calls += 1
        return self.last_out


def _xhat(noise, y, level, cached):
    model = noise.with_param(float(level))
    return model.tweedie(y, cached(model.network_input(y)))


def _tv(xhat, eps):
    s = tv_charbonnier(xhat, eps)
    return float(s.item()) if torch.isfinite(s).all() else math.inf


def _tv_grid(noise, y, cached, grid, eps, **_):
    best = (math.inf, None, None, None)
    for i, level in enumerate(grid):
        xhat = _xhat(noise, y, level, cached)
        score = _tv(xhat, eps)
        if score < best[0] or best[1] is None:
            best = (score, float(level), xhat, i)
    return best


def _tv_golden(noise, y, cached, grid, eps, refine_iters=12, **_):
    score, level, xhat, i = _tv_grid(noise, y, cached, grid, eps)
    lo, hi = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, len(grid) - 1)])
    if hi <= lo or refine_iters <= 0:
        return score, level, xhat, i
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    xc, xd = _xhat(noise, y, c, cached), _xhat(noise, y, d, cached)
    fc, fd = _tv(xc, eps), _tv(xd, eps)
    cands = [(score, level, xhat), (fc, c, xc), (fd, d, xd)]
    for _ in range(int(refine_iters)):
        if fc <= fd:  # minimum in [a, d]
            b, d, fd, xd = d, c, fc, xc
            c = b - inv_phi * (b - a)
            xc = _xhat(noise, y, c, cached)
            fc = _tv(xc, eps)
            cands.append((fc, c, xc))
        else:  # minimum in [c, b]
            a, c, fc, xc = c, d, fd, xd
            d = a + inv_phi * (b - a)
            xd = _xhat(noise, y, d, cached)
            fd = _tv(xd, eps)
            cands.append((fd, d, xd))
    best = min(cands, key=lambda t: t[0])  # never worse than the grid's best
    return best[0], float(best[1]), best[2], i


def _require_gaussian(noise, method):
    if noise.param_name != 'sigma' or not hasattr(noise, 'std') or not noise.has_tweedie:
        raise OptionError(f"blind_method '{method}' estimates additive Gaussian noise only; got {noise.name} "
                          "(use 'tv_grid' or 'tv_golden')")


def haar_diagonal(y):
    """Finest-scale diagonal (HH) orthonormal Haar coefficients ``(a - b - c + d) / 2`` of 2x2 blocks.

    Args:
        y (Tensor): ``(B, C, H, W)``; an odd last row/column is dropped.

    Returns:
        Tensor: ``(B, C, H // 2, W // 2)``; for white noise of std ``s`` the coefficients have std ``s``.
    """
    h, w = y.shape[-2] // 2 * 2, y.shape[-1] // 2 * 2
    a, b = y[..., 0:h:2, 0:w:2], y[..., 0:h:2, 1:w:2]
    c, d = y[..., 1:h:2, 0:w:2], y[..., 1:h:2, 1:w:2]
    return (a - b - c + d) / 2.0


def mad_sigma(y):
    """Donoho's robust noise std ``median(|HH1|) / 0.6745`` per image, on the scale of ``y``.

    Donoho & Johnstone, "Ideal spatial adaptation by wavelet shrinkage", Biometrika 1994.
    All channels of an image are pooled (the noise is assumed white and equal in every channel).

    Args:
        y (Tensor): ``(B, C, H, W)`` noisy images, at least 2x2.

    Returns:
        Tensor: ``(B,)`` float64 estimates of the noise std.
    """
    hh = haar_diagonal(y.double()).flatten(1).abs()
    if hh.shape[1] == 0:
        raise OptionError(f"blind_method 'mad': image of size {tuple(y.shape[-2:])} is too small (needs 2x2)")
    return hh.median(dim=1).values / MAD_CONSTANT


def pca_sigma(y, patch_size=7, max_patches=60000):
    """Patch-PCA noise std per image (Chen, Zhu & Heng, ICCV 2015), on the scale of ``y``.

    The eigenvalues ``l_1 <= ... <= l_M`` of the covariance of all ``patch_size**2 * C``-dimensional
    patches are scanned from the full set downwards: the first (largest) prefix whose mean has as
    many eigenvalues above it as below it is taken as the noise eigenvalues; its mean is ``sigma^2``.

    Args:
        y (Tensor): ``(B, C, H, W)`` noisy images, each side at least ``patch_size``.
        patch_size (int): Patch side. Default: 7.
        max_patches (int): Overlapping patches are taken with the smallest stride that keeps their
            number below this (memory). Default: 60000.

    Returns:
        Tensor: ``(B,)`` float64 estimates of the noise std.
    """
    y = y.double()
    b, c, h, w = y.shape
    if min(h, w) < patch_size:
        raise OptionError(f"blind_method 'pca': image of size {h}x{w} is smaller than the {patch_size}px patches")
    n1 = (h - patch_size + 1) * (w - patch_size + 1)
    stride = max(1, int(math.ceil(math.sqrt(n1 / max_patches))))
    out = []
    for i in range(b):
        patches = F.unfold(y[i:i + 1], patch_size, stride=stride)[0]  # (C*p*p, N)
        patches = patches - patches.mean(1, keepdim=True)
        cov = patches @ patches.T / max(patches.shape[1] - 1, 1)
        lam = torch.linalg.eigvalsh(cov).clamp_min(0.0)  # ascending
        var = lam[0]
        for m in range(lam.numel(), 0, -1):
            sub = lam[:m]
            mean = sub.mean()
            if int((sub > mean).sum()) == int((sub < mean).sum()):
                var = mean
                break
        out.append(var.sqrt())
    return torch.stack(out)


def _direct(estimator, name):
    def run(noise, y, cached, grid, eps, **_):
        _require_gaussian(noise, name)
        std = float(estimator(y)[0])
        level = max(std * noise.sigma / noise.std, 1e-6)  # [0, 1] std -> the family's sigma scale (0-255)
        xhat = _xhat(noise, y, level, cached)
        return _tv(xhat, eps), level, xhat, None

    return run


#: Blind methods by name: ``fn(noise, y, cached, grid, eps, refine_iters) -> (tv, level, xhat, grid_index)``.
BLIND_METHODS = {
    'tv_grid': _tv_grid,
    'tv_golden': _tv_golden,
    'mad': _direct(mad_sigma, 'mad'),
    'pca': _direct(pca_sigma, 'pca'),
}


def estimate_level(noise, y, score_fn, method='tv_grid', grid=None, tv_eps=1e-3, refine_iters=12):
    """Estimate the noise level of each image and return it with the Tweedie estimate at that level.

    Args:
        noise (NoiseModel): The noise family (its current level is ignored; only the family is used),
            with Tweedie's step (Gaussian, Poisson, Gamma).
        y (Tensor): Noisy images ``(B, C, H, W)``, float (unclipped). Each image is treated on its own.
        score_fn (callable): ``R``: maps ``noise.network_input(y_b)`` ``(1, C, H, W)`` to the score,
            same shape (padding, if the network needs it, is the caller's business).
        method (str): One of :data:`BLIND_METHODS`. Default: ``'tv_grid'``.
        grid (list[float] | None): Levels tried by the TV methods, on the family's scale (sigma 0-255,
            eta, k). Default: None (``noise.grid()``: the authors' range).
        tv_eps (float): Charbonnier ``eps`` of :func:`tv_charbonnier`. Default: 1e-3.
        refine_iters (int): Golden-section steps of ``'tv_golden'``. Default: 12.

    Returns:
        tuple[Tensor, Tensor]: ``level``: ``(B,)`` float64 levels on the family's scale (``float(level)``
        works for one image); ``xhat``: ``(B, C, H, W)`` Tweedie estimates at those levels, unclipped.

    Raises:
        OptionError: unknown method, a Gaussian-only method with another family, an empty grid or
            a non-positive grid level.
    """
    if method not in BLIND_METHODS:
        raise OptionError(f"blind_method: unknown method '{method}' (known: {', '.join(BLIND_METHODS)})")
    if not getattr(noise, 'has_tweedie', False):
        raise OptionError(f"{noise.name}: Tweedie's formula is not defined for this noise family")
    if y.dim() == 3:
        y = y[None]
    grid = list(noise.grid() if grid is None else grid)
    if method.startswith('tv'):
        if not grid:
            raise OptionError('blind grid: needs at least one level')
        for v in grid:
            noise.with_param(v)  # validates each level (> 0)
        grid = sorted(float(v) for v in grid)
    fn = BLIND_METHODS[method]
    levels, outs = [], []
    for i in range(y.shape[0]):
        cached = _CachedScore(score_fn)
        _, level, xhat, _ = fn(noise, y[i:i + 1], cached, grid, tv_eps, refine_iters=refine_iters)
        levels.append(level)
        outs.append(xhat)
    return torch.tensor(levels, dtype=torch.float64), torch.cat(outs, 0)


__all__ = ['estimate_level', 'tv_charbonnier', 'mad_sigma', 'pca_sigma', 'haar_diagonal', 'BLIND_METHODS',
           'MAD_CONSTANT']
