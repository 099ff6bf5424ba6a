"""Pixel, masked and AR-DAE losses: hand computations, hidden-pixel semantics and the annealing schedule."""

import math

import pytest
import torch

from basicsr_denoise.losses import (ARDAELoss, L1Loss, MaskedL1Loss, MaskedMSELoss, MaskedPSNRLoss, MSELoss,
                                    build_loss)
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import LOSS_REGISTRY

MINIMAL = {
    'L1Loss': {}, 'MSELoss': {}, 'MaskedPSNRLoss': {}, 'MaskedL1Loss': {}, 'MaskedMSELoss': {},
    'ARDAELoss': {'total_iter': 10},
}


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _data(seed=0, shape=(2, 3, 6, 5)):
    g = _gen(seed)
    pred, target = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    mask = (torch.rand(shape, generator=g) > 0.3).float()  # keep-mask: 1 = kept
    return pred, target, mask


@pytest.mark.parametrize('name', LOSS_REGISTRY.keys())
def test_build_every_loss_and_one_step(name):
    if name not in MINIMAL:
        pytest.fail(f'loss {name!r} is registered but has no entry in MINIMAL of tests/test_losses.py')
    loss_fn = build_loss({'type': name, **MINIMAL[name]})
    pred, target, mask = _data()
    pred.requires_grad_(True)
    if name == 'ARDAELoss':
        _, u, s = loss_fn.perturb(target, 1, generator=_gen(1))
        loss = loss_fn(pred, u, s)
    elif name.startswith('Masked'):
        loss = loss_fn(pred, target, mask)
    else:
        loss = loss_fn(pred, target)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(pred.grad).all()


def test_build_errors():
    with pytest.raises(OptionError, match='train.pixel_opt.reduce: unknown option key for L1Loss'):
        build_loss({'type': 'L1Loss', 'reduce': 'mean'})
    with pytest.raises(OptionError, match='reduction must be'):
        build_loss({'type': 'MSELoss', 'reduction': 'avg'})
    with pytest.raises(OptionError, match="normalize must be 'all' or 'hidden'"):
        MaskedMSELoss(normalize='visible')
    with pytest.raises(OptionError, match='total_iter'):
        ARDAELoss()
    with pytest.raises(OptionError, match='iters_per_epoch'):
        ARDAELoss(anneal='per_epoch')
    with pytest.raises(OptionError, match='anneal'):
        ARDAELoss(total_iter=10, anneal='cosine')
    with pytest.raises(OptionError, match='sigma_min <= sigma_max'):
        ARDAELoss(sigma_max=0.001, sigma_min=0.05, total_iter=10)


def test_pixel_losses_match_basicsr():
    pred, target, _ = _data()
    torch.testing.assert_close(L1Loss(loss_weight=2.0)(pred, target), 2 * (pred - target).abs().mean())
    torch.testing.assert_close(MSELoss(reduction='sum')(pred, target), ((pred - target) ** 2).sum())
    assert MSELoss(reduction='none')(pred, target).shape == pred.shape
    w = torch.rand(2, 1, 6, 5, generator=_gen(3))  # one-channel weight: mean divides by sum(w) * C
    torch.testing.assert_close(L1Loss()(pred, target, weight=w), ((pred - target).abs() * w).sum() / (w.sum() * 3))


def test_masked_psnr_loss_by_hand():
    pred = torch.zeros(2, 1, 2, 2)
    target = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    mse1 = (0.2 ** 2 + 0.3 ** 2) / 4  # hidden: 0.2, 0.3; mean over all 4 elements
    mse2 = 1.0
    expect = (10 / math.log(10) * math.log(mse1 + 1e-8) + 10 / math.log(10) * math.log(mse2 + 1e-8)) / 2
    assert MaskedPSNRLoss()(pred, target, mask).item() == pytest.approx(expect, rel=1e-6)
    assert MaskedPSNRLoss(loss_weight=0.5)(pred, target, mask).item() == pytest.approx(expect / 2, rel=1e-6)
    # -10*log10(MSE): a PSNR of 20 dB (MSE 0.01 on hidden pixels, all hidden) gives about -20
    full = MaskedPSNRLoss()(torch.full((1, 3, 4, 4), 0.1), torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))
    assert full.item() == pytest.approx(-20.0, abs=1e-5)


@pytest.mark.parametrize('cls', [MaskedMSELoss, MaskedL1Loss, MaskedPSNRLoss])
@pytest.mark.parametrize('mask_channels', [3, 1])
def test_masked_losses_ignore_kept_pixels(cls, mask_channels):
    pred, target, _ = _data(seed=4)
    mask = (torch.rand(2, mask_channels, 6, 5, generator=_gen(5)) > 0.5).float()
    loss_fn = cls()
    base = loss_fn(pred, target, mask)
    changed = pred + 10.0 * mask * torch.randn(pred.shape, generator=_gen(6))  # only kept pixels change
    torch.testing.assert_close(loss_fn(changed, target, mask), base)
    hidden_changed = pred + 0.1 * (1 - mask)
    assert not torch.allclose(loss_fn(hidden_changed, target, mask), base)


def test_masked_mse_normalisation():
    pred, target, mask = _data(seed=7)
    hide = 1 - mask
    sq = ((hide * (pred - target)) ** 2).sum()
    # default: the authors' zero-shot loss, mse_loss((1-M)*pred, (1-M)*target), mean over ALL elements
    torch.testing.assert_close(MaskedMSELoss()(pred, target, mask),
                               torch.nn.functional.mse_loss(hide * pred, hide * target))
    torch.testing.assert_close(MaskedMSELoss(normalize='hidden')(pred, target, mask), sq / hide.sum())
    torch.testing.assert_close(MaskedL1Loss(normalize='hidden')(pred, target, mask),
                               (hide * (pred - target)).abs().sum() / hide.sum())
    # a (B, 1, H, W) mask counts its hidden pixels once per channel
    m1 = mask[:, :1]
    torch.testing.assert_close(MaskedMSELoss(normalize='hidden')(pred, target, m1),
                               (((1 - m1) * (pred - target)) ** 2).sum() / ((1 - m1).sum() * 3))


def test_annealing_global():
    loss_fn = ARDAELoss(sigma_max=0.05, sigma_min=0.001, total_iter=101)
    assert loss_fn.sigma_a(1) == pytest.approx(0.05, abs=1e-15)
    assert loss_fn.sigma_a(51) == pytest.approx((0.05 + 0.001) / 2, abs=1e-15)
    assert loss_fn.sigma_a(101) == pytest.approx(0.001, abs=1e-15)
    assert loss_fn.sigma_a(500) == pytest.approx(0.001, abs=1e-15)  # constant after the end
    values = [loss_fn.sigma_a(i) for i in range(1, 102)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_annealing_per_epoch_restarts():
    loss_fn = ARDAELoss(sigma_max=1.0, sigma_min=0.5, anneal='per_epoch', iters_per_epoch=11)
    assert loss_fn.sigma_a(1) == pytest.approx(1.0)
    assert loss_fn.sigma_a(6) == pytest.approx(0.75)
    assert loss_fn.sigma_a(11) == pytest.approx(0.5)
    assert loss_fn.sigma_a(12) == pytest.approx(1.0)  # second epoch restarts
    assert loss_fn.sigma_a(17) == pytest.approx(0.75)
    assert loss_fn.sigma_a(22) == pytest.approx(0.5)


def test_perturb_and_loss():
    loss_fn = ARDAELoss(total_iter=101)
    y = torch.rand(2, 3, 8, 8, generator=_gen(0))
    y_bar, u, s = loss_fn.perturb(y, 51, generator=_gen(1))
    assert s == loss_fn.sigma_a(51)
    torch.testing.assert_close(y_bar, y + s * u)
    y_bar2, u2, _ = loss_fn.perturb(y, 51, generator=_gen(1))
    assert torch.equal(u, u2) and torch.equal(y_bar, y_bar2)
    # minimiser for a fixed y: R(y_bar) = -(y_bar - y) / s^2 = -u / s gives zero loss
    assert loss_fn(-(y_bar - y) / s ** 2, u, s).item() == pytest.approx(0.0, abs=1e-10)
    r = torch.randn(y.shape, generator=_gen(2))
    torch.testing.assert_close(loss_fn(r, u, s), ((s * r + u) ** 2).mean())


def test_ardae_minimiser_is_the_smoothed_score():
    """y ~ N(0, tau^2): the best linear R(y_bar) = a * y_bar has a = -1 / (tau^2 + s^2), the score slope."""
    tau, n = 0.3, 400_000
    loss_fn = ARDAELoss(sigma_max=0.2, sigma_min=0.2, total_iter=1)
    y = tau * torch.randn(n, generator=_gen(0), dtype=torch.float64)
    y_bar, u, s = loss_fn.perturb(y, 1, generator=_gen(1))
    a = -(u * y_bar).sum() / (s * (y_bar * y_bar).sum())  # argmin_a mean((s*a*y_bar + u)^2)
    assert a.item() == pytest.approx(-1 / (tau ** 2 + s ** 2), rel=0.02)
    best = loss_fn(a * y_bar, u, s)
    assert best < loss_fn(1.1 * a * y_bar, u, s) and best < loss_fn(0.9 * a * y_bar, u, s)
