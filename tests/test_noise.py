"""Noise families: sampling, moments, seeded reproducibility, and Tweedie golden tests."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from basicsr_denoise.noise import Gamma, Gaussian, NoiseModel, Poisson, build_noise, standard_gamma
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import NOISE_REGISTRY

# Minimal option block and (mean, variance) on a constant image c, for every registered family.
FAMILIES = {
    'Gaussian': ({'sigma': 25}, lambda c: (c, (25 / 255) ** 2)),
    'Poisson': ({'eta': 0.01}, lambda c: (c, 0.01 * c)),
    'Gamma': ({'k': 50}, lambda c: (c, c * c / 50)),
    'Speckle': ({'sigma': 50}, lambda c: (c, (c * 50 / 255) ** 2)),
    'SaltPepper': ({'amount': 0.1, 'salt_vs_pepper': 0.3},
                   lambda c: (0.9 * c + 0.03, 0.9 * c * c + 0.03 - (0.9 * c + 0.03) ** 2)),
    'SignalDependentGaussian': ({'sigma_s': 0.1, 'sigma_r': 0.02}, lambda c: (c, 0.01 * c + 0.0004)),
}
NAMES = NOISE_REGISTRY.keys()


def _build(name, **over):
    if name not in FAMILIES:
        pytest.fail(f'noise {name!r} is registered but has no entry in FAMILIES of tests/test_noise.py')
    return build_noise({'type': name, **FAMILIES[name][0], **over})


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_every_family_has_an_entry():
    assert set(NAMES) == set(FAMILIES)


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('shape', [(3, 8, 9), (2, 3, 8, 9)])
def test_sample_shape_dtype_and_seed(name, shape):
    noise = _build(name)
    assert isinstance(noise, NoiseModel) and noise.name == name
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(shape, generator=_gen(0), dtype=dtype)
        y = noise.sample(x, _gen(1))
        assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
        assert torch.isfinite(y).all()
        assert torch.equal(y, noise.sample(x, _gen(1)))
        assert not torch.equal(y, noise.sample(x, _gen(2)))


@pytest.mark.parametrize('name', NAMES)
def test_moments_on_constant_image(name):
    c = 0.4
    noise = _build(name)
    y = noise.sample(torch.full((120_000,), c, dtype=torch.float64), _gen(3))
    mean, var = FAMILIES[name][1](c)
    assert y.mean().item() == pytest.approx(mean, abs=5 * math.sqrt(var / y.numel()) + 1e-12)
    assert y.var().item() == pytest.approx(var, rel=0.04)


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('bad', [0, -1])
def test_non_positive_level_is_an_option_error(name, bad):
    noise = _build(name)
    with pytest.raises(OptionError, match=rf'^noise: {name}: {noise.param_name} must be > 0, got {bad}$'):
        _build(name, **{noise.param_name: bad})
    with pytest.raises(OptionError):
        noise.with_param(bad)


@pytest.mark.parametrize('name', NAMES)
def test_level_param_and_with_param(name):
    noise = _build(name)
    assert noise.param == FAMILIES[name][0][noise.param_name]
    other = noise.with_param(noise.param / 2)
    assert other.param == noise.param / 2 and noise.param == FAMILIES[name][0][noise.param_name]
    assert type(other) is type(noise)


@pytest.mark.parametrize('name', NAMES)
def test_no_nan_on_zero_or_negative_images(name):
    x = torch.tensor([[-0.5, -1e-3, 0.0], [0.0, 1e-6, 1.0]])
    y = _build(name).sample(x, _gen(0))
    assert torch.isfinite(y).all()
    if name in ('Poisson', 'Gamma'):  # x is clamped to >= 0 before sampling
        assert (y >= 0).all() and (y[0] == 0).all()


def test_clip_and_quantize():
    x = torch.rand(2, 3, 16, 16, generator=_gen(0))
    y = build_noise({'type': 'Gaussian', 'sigma': 50, 'clip': True, 'quantize': True}).sample(x, _gen(1))
    assert y.min() >= 0 and y.max() <= 1
    torch.testing.assert_close(y * 255, torch.round(y * 255), atol=1e-4, rtol=0)
    raw = Gaussian(50).sample(x, _gen(1))
    assert raw.min() < 0 or raw.max() > 1  # default: float, unclipped


def test_grids_and_ardae_defaults():
    assert Gaussian(25).grid()[0] == 5 and Gaussian(25).grid()[-1] == 55
    assert Poisson(0.01).grid()[0] == pytest.approx(0.005) and Poisson(0.01).grid()[-1] == pytest.approx(0.1)
    assert Gamma(100).grid()[0] == 40 and Gamma(100).grid()[-1] == 120
    assert Gaussian(25).ardae_scale() == (0.05, 0.001)
    assert Gamma(100).ardae_scale() == (0.05, 0.001)
    assert Poisson(0.01).ardae_scale() == (1.0, 0.5)
    for name in ('Speckle', 'SaltPepper', 'SignalDependentGaussian'):
        noise = _build(name)
        assert not noise.has_tweedie
        for call in (noise.grid, noise.ardae_scale, lambda: noise.tweedie(torch.zeros(1), torch.zeros(1))):
            with pytest.raises(OptionError, match=name):
                call()


def test_network_input():
    y = torch.rand(1, 3, 4, 4)
    assert torch.equal(Gaussian(25).network_input(y), y)
    assert torch.equal(Gamma(100).network_input(y), y)
    torch.testing.assert_close(Poisson(0.01).network_input(y), y / 0.01)


def test_build_errors():
    with pytest.raises(OptionError, match="noise: unknown noise type 'Gausian'"):
        build_noise({'type': 'Gausian', 'sigma': 25})
    with pytest.raises(OptionError, match='datasets.train.noise.sigm: unknown option key'):
        build_noise({'type': 'Gaussian', 'sigm': 25}, key='datasets.train.noise')
    with pytest.raises(OptionError, match='must be a number'):
        build_noise({'type': 'Gaussian', 'sigma': 'high'})
    noise = Gaussian(10)
    assert build_noise(noise) is noise


# --------------------------------------------------------------------------------------- Gamma sampler
@pytest.mark.parametrize('k', [0.5, 3.0, 100.0])
def test_standard_gamma_distribution(k):
    g = standard_gamma(k, (20_000,), generator=_gen(7), dtype=torch.float64)
    assert stats.kstest(g.numpy(), stats.gamma(a=k).cdf).pvalue > 1e-3
    assert torch.equal(g, standard_gamma(k, (20_000,), generator=_gen(7), dtype=torch.float64))


# ------------------------------------------------------------------------------------- Tweedie golden
def test_tweedie_gaussian_prior_exact():
    """x ~ N(mu, tau^2), y = x + s n: marginal N(mu, tau^2 + s^2); posterior mean in closed form."""
    mu, tau, noise = 0.45, 0.2, Gaussian(30)
    s = noise.std
    y = torch.linspace(-0.5, 1.5, 101, dtype=torch.float64)
    score = -(y - mu) / (tau ** 2 + s ** 2)
    post_mean = (tau ** 2 * y + s ** 2 * mu) / (tau ** 2 + s ** 2)
    torch.testing.assert_close(noise.tweedie(y, score), post_mean, atol=1e-5, rtol=0)


def test_tweedie_poisson_two_point_prior():
    """x in {0.3, 0.6}: exact pmf; Robbins' ratio is the posterior mean, the paper's exp form is exp(E[log x|y])."""
    eta = 0.01
    noise = Poisson(eta)
    xs = torch.tensor([0.3, 0.6], dtype=torch.float64)
    logw = torch.log(torch.tensor([0.4, 0.6], dtype=torch.float64))
    lam = xs / eta

    def log_pmf(z):  # log marginal of the counts, continued to real z through Gamma(z + 1)
        return torch.logsumexp(logw - lam + z[:, None] * torch.log(lam), dim=1) - torch.lgamma(z + 1)

    z = torch.arange(10, 91, dtype=torch.float64).requires_grad_(True)
    score = torch.autograd.grad(log_pmf(z).sum(), z)[0]  # analytic score of the continued marginal
    z = z.detach()
    y = eta * z
    post = torch.softmax(logw - lam + z[:, None] * torch.log(lam), dim=1)  # Bayes, directly
    post_mean = (post * xs).sum(1)
    post_geo = torch.exp((post * torch.log(xs)).sum(1))

    # exact: Robbins' identity E[x|y] = (y + eta) p(z+1) / p(z)
    torch.testing.assert_close(noise.tweedie_exact(y, log_pmf(z + 1) - log_pmf(z)), post_mean, rtol=1e-10, atol=0)
    # implemented: the paper's form (y + eta/2) exp(R(y/eta))
    s = torch.randn(z.shape, generator=_gen(0), dtype=torch.float64)
    torch.testing.assert_close(noise.tweedie(y, s), (y + eta / 2) * torch.exp(s), rtol=1e-12, atol=0)
    # exact identity behind it: E[log lam | z] = l'(z) + digamma(z + 1)
    xhat = noise.tweedie(y, score)
    torch.testing.assert_close(xhat, post_geo * (z + 0.5) / torch.exp(torch.special.digamma(z + 1)),
                               rtol=1e-10, atol=0)
    # stated tolerance: the paper's form is the posterior geometric mean within 1 / (24 (z + 1/2)^2)
    assert ((xhat / post_geo - 1).abs() <= 1 / (24 * (z + 0.5) ** 2)).all()
    # ... which is below the posterior mean (Jensen), by several % where the posterior is split
    assert (xhat <= post_mean * (1 + 1e-12)).all()
    assert ((post_mean - xhat) / post_mean).max() > 0.02


def test_tweedie_gamma_uniform_prior():
    """x ~ U(0.2, 0.8), y = x * Gamma(k, 1/k): score and posterior moments by numerical integration."""
    k = 20.0
    noise = Gamma(k)
    lo, hi = 0.2, 0.8

    def lik(yv, x):
        return stats.gamma.pdf(yv, a=k, scale=x / k) / (hi - lo)

    def marginal(yv):
        return integrate.quad(lambda x: lik(yv, x), lo, hi, epsabs=0, epsrel=1e-13, limit=200)[0]

    ys = np.array([0.3, 0.5, 0.7, 0.9])
    scores, harmonic, means = [], [], []
    for yv in ys:
        h = 1e-5 * yv
        scores.append((math.log(marginal(yv + h)) - math.log(marginal(yv - h))) / (2 * h))
        p = marginal(yv)
        inv = integrate.quad(lambda x: lik(yv, x) / x, lo, hi, epsabs=0, epsrel=1e-13, limit=200)[0] / p
        harmonic.append(1.0 / inv)
        means.append(integrate.quad(lambda x: lik(yv, x) * x, lo, hi, epsabs=0, epsrel=1e-13, limit=200)[0] / p)
    xhat = noise.tweedie(torch.tensor(ys), torch.tensor(scores)).numpy()
    np.testing.assert_allclose(xhat, harmonic, rtol=1e-5)  # exact for 1 / E[1/x | y]
    assert (xhat < np.array(means)).all()  # the posterior mean is larger (harmonic <= arithmetic)


@pytest.mark.parametrize('name', ['Gaussian', 'Poisson', 'Gamma'])
def test_tweedie_is_finite(name):
    noise = _build(name)
    y = torch.tensor([-1.0, -1e-3, 0.0, 0.0, 1e-6, 0.5, 1.0, 2.0])
    for s in (0.0, 1e4, -1e4, 1e30, -1e30, float('inf'), float('-inf')):
        if name == 'Gaussian' and math.isinf(s):
            continue  # y + sigma^2 * inf is inf by definition; no guard for the linear formula
        out = noise.tweedie(y, torch.full_like(y, s))
        assert torch.isfinite(out).all(), (name, s, out)
    assert torch.isfinite(noise.tweedie(y, torch.randn(y.shape, generator=_gen(0)))).all()
