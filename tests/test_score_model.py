"""Noise2Score: ScoreModel training/test steps, Tweedie through the model, blind estimators, option files."""

import csv
import glob
import json
import os
import sys

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from basicsr_denoise.models import build_model
from basicsr_denoise.noise import build_noise
from basicsr_denoise.noise.blind import estimate_level, mad_sigma, pca_sigma, tv_charbonnier
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.img_util import img2tensor, imread
from basicsr_denoise.utils.options import check_options, load_yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
SAMPLES = sorted(glob.glob(os.path.join(REPO, 'datasets', 'samples', '*.png')))
NOISES = {
    'Gaussian': {'type': 'Gaussian', 'sigma': 25},
    'Poisson': {'type': 'Poisson', 'eta': 0.01},
    'Gamma': {'type': 'Gamma', 'k': 100},
}


def _options(noise=None, is_train=True, total_iter=10, ch=3, **score):
    opt = {
        'name': 'n2s_tiny', 'model_type': 'ScoreModel', 'num_gpu': 0, 'manual_seed': 0,
        'network_g': {'type': 'N2NUNet', 'num_in_ch': ch, 'num_out_ch': ch},
        'score': {'noise': dict(noise or NOISES['Gaussian']), **score},
        'train': {'optim_g': {'type': 'Adam', 'lr': 2e-4, 'betas': [0.5, 0.999]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [5], 'gamma': 0.1},
                  'total_iter': total_iter, 'score_opt': {'type': 'ARDAELoss'}},
    }
    if is_train:
        opt['datasets'] = {'train': {'type': 'SingleImageDataset', 'dataroot_lq': 'unused',
                                     'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0}}
    opt = check_options(opt, is_train)
    opt['is_train'] = is_train
    return opt


class AnalyticScore(nn.Module):
    """Score of the noisy marginal for a Gaussian prior x ~ N(mu, tau^2) per pixel: -(y - mu) / (tau^2 + s^2)."""

    def __init__(self, mu, tau, std):
        super().__init__()
        self.mu, self.var = mu, tau ** 2 + std ** 2
        self.calls = 0

    def forward(self, y):
        self.calls += 1
        return -(y - self.mu) / self.var


# ------------------------------------------------------------------------------ (a) training
@pytest.mark.parametrize('family', list(NOISES))
def test_two_training_steps_without_gt(family):
    torch.manual_seed(0)
    model = build_model(_options(NOISES[family]))
    x = torch.rand(2, 3, 32, 32) * 0.8 + 0.1
    lq = build_noise(NOISES[family]).sample(x, torch.Generator().manual_seed(1))
    before = [p.detach().clone() for p in model.net_g.parameters()]
    for it in (1, 2):
        # a NaN gt in the batch must not matter: training never reads it
        model.feed_data({'lq': lq, 'gt': torch.full_like(lq, float('nan')), 'lq_path': ['a', 'b']})
        model.optimize_parameters(it)
        assert np.isfinite(model.log_dict['l_score'])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    model.feed_data({'lq': lq[:1]})
    model.test()
    assert model.output.shape == lq[:1].shape and torch.isfinite(model.output).all()


def test_training_pads_sizes_that_are_not_multiples_of_32():
    model = build_model(_options())
    model.feed_data({'lq': torch.rand(2, 3, 40, 36)})
    model.optimize_parameters(1)
    assert np.isfinite(model.log_dict['l_score'])


# ------------------------------------------------------------------------------ (b) Tweedie golden test
@pytest.mark.parametrize('shape', [(1, 3, 20, 27), (1, 1, 32, 32)])
def test_tweedie_through_the_model_is_the_gaussian_posterior_mean(shape):
    sigma, mu, tau = 25.0, 0.4, 0.15
    std = sigma / 255
    model = build_model(_options({'type': 'Gaussian', 'sigma': sigma}, is_train=False, ch=shape[1],
                                 clip_output=False))
    model.net_g = AnalyticScore(mu, tau, std)
    g = torch.Generator().manual_seed(0)
    x = mu + tau * torch.randn(shape, generator=g, dtype=torch.float64)
    y = x + std * torch.randn(shape, generator=g, dtype=torch.float64)
    model.feed_data({'lq': y})
    model.test()
    posterior_mean = (tau ** 2 * y + std ** 2 * mu) / (tau ** 2 + std ** 2)
    assert torch.allclose(model.output, posterior_mean, atol=1e-5, rtol=0)
    assert model.extra_record() == {}


@pytest.mark.parametrize('family', ['Poisson', 'Gamma'])
def test_model_applies_the_family_tweedie_to_the_network_input_score(family):
    noise = build_noise(NOISES[family])
    model = build_model(_options(NOISES[family], is_train=False, clip_output=False))
    model.net_g = nn.Tanh()  # any elementwise "score"
    y = noise.sample(torch.rand(1, 3, 16, 16, dtype=torch.float64), torch.Generator().manual_seed(0))
    model.feed_data({'lq': y})
    model.test()
    assert torch.allclose(model.output, noise.tweedie(y, torch.tanh(noise.network_input(y))))


# ------------------------------------------------------------------------------ (c) blind estimators
def _smooth_image(h=64, w=64, ch=3):
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64), torch.linspace(0, 1, w, dtype=torch.float64),
                            indexing='ij')
    base = 0.5 + 0.3 * torch.sin(3 * xx) * torch.cos(2 * yy)
    return torch.stack([base * (0.8 + 0.1 * c) for c in range(ch)])[None]


@pytest.mark.parametrize('method,true_sigma,tol', [('tv_grid', 25.0, 1e-9), ('tv_golden', 27.0, 1.0),
                                                   ('tv_grid', 40.0, 1e-9)])
def test_tv_search_recovers_sigma_with_an_oracle_score(method, true_sigma, tol):
    x = _smooth_image()
    std = true_sigma / 255
    y = x + std * torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    oracle = AnalyticScore(x, 0.0, std)  # score of the noisy marginal of a point-mass prior at x
    level, xhat = estimate_level(build_noise({'type': 'Gaussian', 'sigma': 10}), y, oracle, method=method)
    assert abs(float(level) - true_sigma) <= tol
    assert oracle.calls == 1  # the Gaussian network input does not depend on sigma: one network call
    assert (xhat - x).pow(2).mean().sqrt() < (1e-9 if method == 'tv_grid' else 0.01)


@pytest.mark.parametrize('method', ['tv_grid', 'tv_golden'])
def test_tv_search_recovers_gamma_k_with_an_oracle_score(method):
    x, k = _smooth_image(), 80.0
    noise = build_noise({'type': 'Gamma', 'k': k})
    y = noise.sample(x, torch.Generator().manual_seed(0))

    def oracle(inp):  # d/dy log Gamma(y; k, x/k) for a point-mass prior at x
        return (k - 1) / inp - k / x

    level, xhat = estimate_level(build_noise({'type': 'Gamma', 'k': 40}), y, oracle, method=method)
    assert abs(float(level) - k) <= 1.0 and torch.allclose(xhat, x, atol=1e-3)


def test_tv_grid_calls_the_network_per_level_for_poisson_only():
    y = torch.rand(1, 1, 16, 16, dtype=torch.float64) + 0.1
    for name, calls in (('Poisson', len(build_noise(NOISES['Poisson']).grid())), ('Gamma', 1)):
        counter = AnalyticScore(0.0, 1.0, 0.0)
        level, xhat = estimate_level(build_noise(NOISES[name]), y, counter, method='tv_grid')
        assert counter.calls == calls and torch.isfinite(xhat).all()
        assert float(level) in build_noise(NOISES[name]).grid()


def test_tv_charbonnier_prefers_smooth_images():
    x = _smooth_image()
    noisy = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tv = tv_charbonnier(torch.cat([x, noisy]))
    assert tv.shape == (2, ) and tv[0] < tv[1]
    assert torch.allclose(tv_charbonnier(torch.zeros(1, 1, 4, 4)), torch.tensor([2e-3], dtype=torch.float64))


def _sample(path):
    return img2tensor(imread(path))[None].double()


@pytest.mark.parametrize('sigma', [15, 25, 50])
def test_mad_and_pca_estimate_sigma_on_real_images(sigma):
    errs = {'mad': [], 'pca': []}
    for k, path in enumerate(SAMPLES):
        x = _sample(path)
        y = x + sigma / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
        errs['mad'].append(float(mad_sigma(y)) * 255 / sigma - 1)
        errs['pca'].append(float(pca_sigma(y)) * 255 / sigma - 1)
    mad, pca = np.array(errs['mad']), np.array(errs['pca'])
    # MAD reads image texture as noise: it overestimates, by up to ~30 % at sigma 15 on the textured Kodak crops
    assert (mad > -0.05).all()
    if sigma == 50:
        assert (np.abs(mad) <= 0.10).all()
    elif sigma == 25:
        assert (np.abs(mad) <= 0.10).sum() >= 2 and (np.abs(mad) <= 0.20).all()
    else:
        assert (np.abs(mad) <= 0.35).all()
    assert np.abs(pca).max() <= 0.12  # patch PCA: within 12 % on every sample, every level


def test_mad_method_through_the_model_records_sigma_hat():
    x = _sample(SAMPLES[-1])  # the gray Set12 crop, 96x128
    y = x + 50 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = build_model(_options({'type': 'Gaussian', 'sigma': 5}, is_train=False, ch=1, blind=True,
                                 blind_method='mad'))
    model.net_g = AnalyticScore(0.5, 0.2, 0.0)
    model.feed_data({'lq': y})
    model.test()
    rec = model.extra_record()
    assert set(rec) == {'sigma_hat'} and abs(rec['sigma_hat'] - 50) < 5


def test_gaussian_only_methods_refuse_other_families():
    with pytest.raises(OptionError, match='Gaussian'):
        estimate_level(build_noise(NOISES['Poisson']), torch.rand(1, 1, 8, 8), lambda t: t, method='mad')
    with pytest.raises(OptionError, match='unknown'):
        estimate_level(build_noise(NOISES['Gaussian']), torch.rand(1, 1, 8, 8), lambda t: t, method='oracle')


# ------------------------------------------------------------------------------ (d) end to end
def _write_images(folder, n=2, size=(40, 48)):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random((*size, 3)) * 60 + 90 + 40 * i).astype(np.uint8)
        cv2.imwrite(os.path.join(folder, f'img{i}.png'), img)
    return folder


def test_blind_test_pipeline_writes_sigma_hat(tmp_path):
    from basicsr_denoise.test import test_pipeline
    data = _write_images(str(tmp_path / 'clean'))
    opt = {
        'name': 'n2s_blind_tiny', 'model_type': 'ScoreModel', 'num_gpu': 0,
        'datasets': {'test_1': {'name': 'tiny', 'type': 'SyntheticNoisyDataset', 'dataroot_gt': data,
                                'noise': {'type': 'Gaussian', 'sigma': 25}, 'seed': 0}},
        'network_g': {'type': 'N2NUNet', 'num_in_ch': 3, 'num_out_ch': 3},
        'score': {'noise': {'type': 'Gaussian', 'sigma': 25}, 'blind': True, 'blind_method': 'tv_golden',
                  'grid': [10, 25, 40], 'refine_iters': 3},
        'val': {'save_img': True, 'pbar': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'float_mode': True}}},
    }
    import yaml
    opt_file = tmp_path / 'test.yml'
    opt_file.write_text(yaml.safe_dump(opt))
    test_pipeline(root_path=str(tmp_path), argv=['-opt', str(opt_file)])
    metrics = json.loads((tmp_path / 'results' / 'n2s_blind_tiny' / 'metrics.json').read_text())
    images = metrics['tiny']['images']
    assert [r['name'] for r in images] == ['img0', 'img1']
    for r in images:
        assert 10 <= r['sigma_hat'] <= 40 and np.isfinite(r['psnr'])
    assert 'sigma_hat' in metrics['tiny']['mean']
    assert os.path.isfile(tmp_path / 'results' / 'n2s_blind_tiny' / 'visualization' / 'tiny' / 'img0.png')


# ------------------------------------------------------------------------------ (e) bad input
@pytest.mark.parametrize('noise', [{'type': 'Gaussian', 'sigma': 0}, {'type': 'Gaussian', 'sigma': -5},
                                   {'type': 'Poisson', 'eta': 0.0}, {'type': 'Gamma', 'k': -1}])
def test_non_positive_level_is_an_option_error(noise):
    with pytest.raises(OptionError):
        build_model(_options(noise, is_train=False))


def test_bad_score_options_are_option_errors():
    with pytest.raises(OptionError, match='Tweedie'):
        build_model(_options({'type': 'Speckle', 'sigma': 10}, is_train=False))
    with pytest.raises(OptionError, match='blind_method'):
        build_model(_options(is_train=False, blind=True, blind_method='nope'))
    with pytest.raises(OptionError):
        build_model(_options(is_train=False, blind=True, grid=[0, 10]))
    with pytest.raises(OptionError, match='score.blind_typo'):
        _options(is_train=False, blind_typo=True)


class ExtremeScore(nn.Module):

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, y):
        return torch.full_like(y, self.value)


@pytest.mark.parametrize('family', ['Poisson', 'Gamma'])
@pytest.mark.parametrize('blind', [False, True])
def test_zero_and_negative_images_never_give_nan(family, blind):
    model = build_model(_options(NOISES[family], is_train=False, blind=blind, clip_output=False))
    y = torch.cat([torch.zeros(1, 3, 32, 32), -0.1 * torch.ones(1, 3, 32, 32)], 3)
    nets = [model.net_g, ExtremeScore(float('inf')), ExtremeScore(float('-inf')), ExtremeScore(1e30)]
    for net in nets:
        model.net_g = net
        model.feed_data({'lq': y})
        model.test()
        assert not torch.isnan(model.output).any(), (family, blind, net)
    model.clip_output = True
    model.test()
    assert torch.isfinite(model.output).all()


# ------------------------------------------------------------------------------ (f) annealing
def test_model_anneals_sigma_a_over_global_iterations():
    total = 7
    model = build_model(_options(NOISES['Gaussian'], total_iter=total))
    assert (model.cri_score.sigma_max, model.cri_score.sigma_min) == (0.05, 0.001)
    seen = []
    perturb = model.cri_score.perturb

    def spy(y, iteration, generator=None):
        out = perturb(y, iteration, generator)
        seen.append((iteration, out[2]))
        return out

    model.cri_score.perturb = spy
    lq = torch.rand(1, 3, 32, 32)
    for it in (1, total):
        model.feed_data({'lq': lq})
        model.optimize_parameters(it)
        assert model.log_dict['sigma_a'] == pytest.approx(seen[-1][1])
    assert seen == [(1, pytest.approx(0.05)), (total, pytest.approx(0.001))]


def test_ardae_defaults_come_from_the_family_and_options_override_them():
    model = build_model(_options(NOISES['Poisson'], total_iter=5))
    assert (model.cri_score.sigma_max, model.cri_score.sigma_min, model.cri_score.total_iter) == (1.0, 0.5, 5)
    opt = _options(NOISES['Gamma'], total_iter=5)
    opt['train']['score_opt'] = {'type': 'ARDAELoss', 'sigma_max': 0.1, 'anneal': 'per_epoch', 'iters_per_epoch': 3}
    loss = build_model(opt).cri_score
    assert (loss.sigma_max, loss.sigma_min, loss.anneal) == (0.1, 0.001, 'per_epoch')
    assert loss.sigma_a(4) == pytest.approx(0.1)


# ------------------------------------------------------------------------------ option files
OPTION_FILES = sorted(glob.glob(os.path.join(REPO, 'options', '*', 'Noise2Score', '*.yml')))


def test_option_files_exist():
    names = {os.path.basename(p) for p in OPTION_FILES}
    for fam in ('gauss25', 'gauss50', 'poisson0.01', 'gamma100'):
        for sfx in ('', '_gray'):
            assert {f'train_N2S_{fam}{sfx}.yml', f'test_N2S_{fam}{sfx}.yml', f'test_N2S_{fam}{sfx}_blind.yml'} <= names


@pytest.mark.parametrize('path', OPTION_FILES, ids=os.path.basename)
def test_option_files_validate(path):
    is_train = os.sep + 'train' + os.sep in path
    opt = check_options(load_yaml(path), is_train, source=path)
    assert opt['model_type'] == 'ScoreModel'
    noise = build_noise(opt['score']['noise'])
    for phase, block in opt['datasets'].items():
        assert block['noise'] == opt['score']['noise'], phase
    ch = opt['network_g']['num_in_ch']
    assert ch == (1 if '_gray' in path else 3)
    if is_train and opt['train']['score_opt'].get('estimator') == 'antithetic':  # the project's CPU recipe
        assert opt['train']['score_opt']['sigma_min'] >= 0.005  # bf16 resolves the pair's difference
        assert opt['logger']['save_in_progress'] is True
        assert opt['datasets']['train']['fixed_noise'] is True
    elif is_train:
        assert opt['train']['scheduler']['milestones'] == [opt['train']['total_iter'] * 7 // 8]  # the last eighth
        assert (opt['train']['score_opt']['sigma_max'], opt['train']['score_opt']['sigma_min']) == noise.ardae_scale()
        assert opt['datasets']['train']['fixed_noise'] is True
    else:
        assert opt['score'].get('blind', False) == path.endswith('_blind.yml')


def test_shipped_train_file_runs_two_iterations(tmp_path):
    from basicsr_denoise.train import train_pipeline
    samples = os.path.join(REPO, 'datasets', 'samples')
    argv = ['-opt', os.path.join(REPO, 'options', 'train', 'Noise2Score', 'train_N2S_gauss25.yml'), '--force_yml',
            f'datasets.train.dataroot_gt={samples}', 'datasets.train.gt_size=32', 'datasets.train.batch_size_per_gpu=2',
            'datasets.train.num_worker_per_gpu=0', 'datasets.val_1=~', 'train.total_iter=2', 'num_gpu=0',
            'train.scheduler.milestones=[1]', 'logger.use_tb_logger=false', 'logger.print_freq=1']
    model = train_pipeline(root_path=str(tmp_path), argv=argv)
    assert model.log_dict['sigma_a'] == pytest.approx(0.001)
    assert os.path.isfile(tmp_path / 'experiments' / 'N2S_gauss25_color_paper' / 'models' / 'net_g_2.pth')


# ------------------------------------------------------------------------------ benchmarks/n2s_curve.py
def test_n2s_curve_tool(tmp_path):
    from _framework import load_tool
    n2s_curve = load_tool('n2s_curve')
    from basicsr_denoise.archs.n2n_unet_arch import N2NUNet
    models = tmp_path / 'exp' / 'models'
    models.mkdir(parents=True)
    for it in (10, 20):
        torch.manual_seed(it)
        torch.save({'params': N2NUNet(1, 1).state_dict()}, models / f'net_g_{it}.pth')
    data = _write_images(str(tmp_path / 'clean'), n=2, size=(32, 32))
    opt = {
        'name': 'curve', 'model_type': 'ScoreModel', 'num_gpu': 0,
        'datasets': {'test_1': {'name': 'tiny', 'type': 'SyntheticNoisyDataset', 'dataroot_gt': data, 'color': 'gray',
                                'noise': {'type': 'Gaussian', 'sigma': 25}}},
        'network_g': {'type': 'N2NUNet', 'num_in_ch': 1, 'num_out_ch': 1},
        'path': {'pretrain_network_g': 'experiments/pretrained_models/none.pth'},
        'score': {'noise': {'type': 'Gaussian', 'sigma': 25}},
        'val': {'metrics': {'psnr': {'type': 'calculate_psnr', 'float_mode': True}}},
    }
    import yaml
    opt_file = tmp_path / 'test.yml'
    opt_file.write_text(yaml.safe_dump(opt))
    out = tmp_path / 'out'
    rows = n2s_curve.main([str(tmp_path / 'exp'), '-opt', str(opt_file), '--max-images', '1', '--out', str(out)])
    assert [r['iter'] for r in rows] == [10, 20] and all(r['images'] == 1 for r in rows)
    with open(out / 'n2s_curve.csv') as f:
        table = list(csv.DictReader(f))
    assert [int(r['iter']) for r in table] == [10, 20] and all(np.isfinite(float(r['psnr'])) for r in table)
    img = cv2.imread(str(out / 'n2s_curve.png'))
    assert img is not None and img.shape[2] == 3 and (img < 250).any()


# ------------------------------------------------------------------------------ (g) the denoise command, --method n2s
def _n2s_weights(tmp_path, ch=3, tied=True):
    from basicsr_denoise.archs.n2n_unet_arch import N2NUNet
    torch.manual_seed(0)
    net = N2NUNet(num_in_ch=ch, num_out_ch=ch, tied=tied)
    path = tmp_path / f'n2s_{ch}_{tied}.pth'
    torch.save({'params': net.state_dict()}, path)
    return str(path)


@pytest.mark.parametrize('ch,tied', [(3, True), (1, False)])
def test_denoise_n2s_matches_the_score_model(tmp_path, ch, tied):
    from basicsr_denoise.inference import N2SDenoiser
    weights = _n2s_weights(tmp_path, ch, tied)
    y = torch.rand(1, ch, 40, 50) + 0.1 * torch.randn(1, ch, 40, 50)  # not a multiple of 32: padded
    network_g = {'type': 'N2NUNet', 'num_in_ch': ch, 'num_out_ch': ch, 'tied': tied}  # an old-format file
    out, extra = N2SDenoiser.from_pretrained(weights, network_g, sigma=25, device='cpu').process(y, 'img')
    opt = _options(is_train=False, ch=ch)
    opt['network_g']['tied'] = tied
    opt['path'] = {'pretrain_network_g': weights, 'strict_load_g': True}
    model = build_model(opt)
    model.feed_data({'lq': y})
    model.test()
    assert extra == {} and out.shape == y.shape
    assert torch.allclose(out, model.output, atol=1e-6)


@pytest.mark.slow  # a subprocess
def test_denoise_command_n2s_blind_records_sigma_hat_and_refuses_channel_mismatch(tmp_path):
    from basicsr_denoise.utils.img_util import imwrite
    weights = _n2s_weights(tmp_path)
    inp = tmp_path / 'in'
    rng = np.random.default_rng(0)
    imwrite(rng.random((40, 50, 3)).astype(np.float32), str(inp / 'rgb.png'))
    imwrite(rng.random((40, 50, 1)).astype(np.float32), str(inp / 'gray.png'))
    out = tmp_path / 'out'
    env = {**os.environ, 'PYTHONPATH': REPO, 'OMP_NUM_THREADS': '1'}
    import subprocess
    proc = subprocess.run([sys.executable, '-m', 'basicsr_denoise', str(inp), '-o', str(out),
                           '--method', 'n2s', '--weights', weights, '--network', '{type: N2NUNet}'],
                          cwd=str(tmp_path), capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1  # one image failed
    assert f'error: {inp / "gray.png"}: 1-channel image, but the Noise2Score network' in proc.stderr
    metrics = json.load(open(out / 'metrics.json'))
    rec = metrics['images'][0]
    assert metrics['method'] == 'n2s' and rec['name'] == 'rgb' and 5.0 <= rec['sigma_hat'] <= 55.0
    assert 'sigma_hat' in proc.stdout and (out / 'rgb_denoised.png').exists() and (out / 'rgb_compare.png').exists()
    for args, msg in ((['--method', 'n2s', '--sigma', '0'], 'sigma must be > 0'),
                      (['--sigma', '25'], '--sigma applies to --method n2s only')):
        proc = subprocess.run([sys.executable, '-m', 'basicsr_denoise', str(inp / 'rgb.png'), '-o', str(out),
                               '--weights', weights, '--network', '{type: N2NUNet}', *args], cwd=str(tmp_path),
                              capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode == 2 and msg in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_n2s_blind_tool(tmp_path):
    from _framework import load_tool
    from basicsr_denoise.archs.n2n_unet_arch import N2NUNet
    from basicsr_denoise.metrics.psnr_ssim import calculate_psnr
    tool = load_tool('n2s_blind')
    net = N2NUNet()
    for p in net.parameters():
        torch.nn.init.zeros_(p)  # R = 0: Tweedie returns the (clipped) noisy image at any level
    weights = tmp_path / 'zero.pth'
    torch.save({'params': net.state_dict(), 'network_g': {'type': 'N2NUNet'}}, weights)  # self-describing
    data = os.path.join(REPO, 'datasets', 'samples')
    res = tool.evaluate(str(weights), data, [25.0], methods=('pca', 'tv_grid'), max_images=2)
    rows = res['25.0']
    from basicsr_denoise.data import build_dataset
    ds = build_dataset({'type': 'SyntheticNoisyDataset', 'phase': 'test', 'dataroot_gt': data, 'color': 'rgb',
                        'noise': {'type': 'Gaussian', 'sigma': 25}, 'seed': 0})
    for i, row in enumerate(rows):  # the same noisy images as test.py, and R = 0 leaves them unchanged
        item = ds[i]
        noisy = item['lq'].clamp(0, 1).numpy().transpose(1, 2, 0)
        assert row['psnr_known'] == pytest.approx(calculate_psnr(noisy, item['gt'].numpy().transpose(1, 2, 0),
                                                                 float_mode=True), abs=1e-6)
        assert abs(row['pca_sigma_hat'] - 25.0) < 2.0 and row['tv_grid_sigma_hat'] in range(5, 56, 5)
    summary = tool.summarize(res, methods=('pca', 'tv_grid'))['25.0']
    hats = [r['pca_sigma_hat'] for r in rows]
    assert summary['pca']['mae'] == pytest.approx(np.mean(np.abs(np.array(hats) - 25)))
    assert summary['pca']['cost'] == pytest.approx(0.0, abs=1e-9)  # R = 0: the level does not matter
    assert '| 25.0 | 2 |' in tool.to_markdown({'25.0': summary}, methods=('pca', 'tv_grid'))


# ------------------------------------------------------------------------------ the shipped model chosen per image
def _entry(name, family, level, channels, path=None):
    return {'name': name, 'path': path, 'family': family, 'level': float(level), 'channels': channels}


def test_the_model_is_chosen_by_colour_family_and_nearest_level_with_a_warning_outside_their_levels():
    from basicsr_denoise.inference import choose_n2s_model
    models = [_entry('g25c', 'gaussian', 25, 3), _entry('g50c', 'gaussian', 50, 3), _entry('g25g', 'gaussian', 25, 1),
              _entry('p01c', 'poisson', 0.01, 3), _entry('p05c', 'poisson', 0.05, 3)]
    pick = lambda *a: (lambda e, w: (e['name'], w))(*choose_n2s_model(*a, models))  # noqa: E731
    assert pick('gaussian', 30, 3) == ('g25c', None) and pick('gaussian', 40, 3) == ('g50c', None)
    assert pick('gaussian', 35, 1) == ('g25g', None)  # a gray image gets the gray model
    assert pick('poisson', 0.03, 3) == ('p05c', None)  # nearest in ratio: 0.03 / 0.01 = 3 > 0.05 / 0.03
    assert pick('gaussian', None, 3) == ('g25c', None)  # blind: the middle model first
    name, warning = pick('gaussian', 80, 3)
    assert name == 'g50c' and warning.startswith('sigma 80 is outside') and 'g50c' in warning and '25-50' in warning
    name, warning = pick('gaussian', 5, 3)
    assert name == 'g25c' and 'sigma 5 is outside' in warning
    name, warning = pick('poisson', 0.02, 1)  # no gray Poisson model: the colour one, said so
    assert name == 'p01c' and 'no gray poisson model' in warning
    with pytest.raises(OptionError, match=r'^noise gamma: no Noise2Score model for it is shipped'):
        pick('gamma', 100, 3)
    with pytest.raises(OptionError, match='only gray'):
        choose_n2s_model('gaussian', 25, 3, [_entry('g25g', 'gaussian', 25, 1)])


def _shipped_like(tmp_path, name, noise, ch):
    """A tiny self-describing Noise2Score checkpoint, as tools/ship_checkpoint.py writes it."""
    from basicsr_denoise.checkpoint import export_checkpoint
    from basicsr_denoise.inference import N2S_FAMILIES
    src = _n2s_weights(tmp_path, ch)
    family = {v[0]: k for k, v in N2S_FAMILIES.items()}[noise['type']]
    level = noise[N2S_FAMILIES[family][1]]
    dst = str(tmp_path / name)
    export_checkpoint(src, dst, network_g={'type': 'N2NUNet', 'num_in_ch': ch, 'num_out_ch': ch}, score={'noise': noise})
    return _entry(name, family, level, ch, dst)


def test_the_auto_denoiser_names_its_model_in_each_record_and_refines_a_blind_choice(tmp_path):
    from basicsr_denoise.inference import N2SAutoDenoiser, N2SDenoiser
    models = [_shipped_like(tmp_path, 'c15.pth', {'type': 'Gaussian', 'sigma': 15}, 3),
              _shipped_like(tmp_path, 'c50.pth', {'type': 'Gaussian', 'sigma': 50}, 3),
              _shipped_like(tmp_path, 'g25.pth', {'type': 'Gaussian', 'sigma': 25}, 1)]
    torch.manual_seed(0)
    rgb, gray = torch.rand(1, 3, 40, 48), torch.rand(1, 1, 40, 48)
    known = N2SAutoDenoiser('gaussian', 20, device='cpu', models=models)
    out, rec = known.process(rgb, 'a')
    assert rec == {'model': 'c15.pth'}
    direct = N2SDenoiser.from_pretrained(models[0]['path'], sigma=20, device='cpu').process(rgb, 'a')[0]
    assert torch.equal(out, direct)  # the chosen model, at the given level
    assert known.process(gray, 'b')[1]['model'] == 'g25.pth'
    blind = N2SAutoDenoiser('gaussian', None, device='cpu', models=models)
    out, rec = blind.process(rgb, 'c')
    first = N2SDenoiser.from_pretrained(models[1]['path'], device='cpu').process(rgb, 'c')[1]['sigma_hat']
    nearest = min(models[:2], key=lambda m: abs(np.log(m['level'] / first)))['name']
    assert rec['model'] == nearest and isinstance(rec['sigma_hat'], float)
    with pytest.raises(OptionError, match=r'^eta: must be a number > 0'):
        N2SAutoDenoiser('poisson', 0, device='cpu', models=models)


@pytest.mark.parametrize('args, match', [
    (['--noise', 'poisson', '--sigma', '25'], r'^--sigma applies to --noise gaussian; --noise poisson takes --eta$'),
    (['--eta', '0.01'], r'^--eta applies to --noise poisson; --noise gaussian takes --sigma$'),
    (['--noise', 'poisson', '--eta', '0'], r'^--eta must be > 0, got 0$'),
    (['--noise', 'gamma', '--k', '-1'], r'^--k must be > 0, got -1$'),
    (['--noise', 'gamma', '--method', 'mpi'], r'^--noise applies to --method n2s only'),
    (['--noise', 'gamma'], r'^noise gamma: no Noise2Score model for it is shipped')])
def test_bad_noise_flags_are_one_line_errors(tmp_path, args, match):
    from basicsr_denoise.cli import build_parser, run
    from basicsr_denoise.utils.img_util import imwrite
    imwrite(np.full((16, 16, 3), 0.5, np.float32), str(tmp_path / 'a.png'))
    argv = [str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), '--method', 'n2s', '--device', 'cpu', *args]
    with pytest.raises(OptionError, match=match) as exc:
        run(build_parser().parse_args(argv))
    assert '\n' not in str(exc.value)


def test_the_command_names_the_chosen_model_and_warns_outside_its_level(tmp_path, capsys):
    from basicsr_denoise.cli import build_parser, run
    from basicsr_denoise.utils.img_util import imwrite
    rng = np.random.default_rng(0)
    imwrite(rng.random((32, 40, 3)).astype(np.float32), str(tmp_path / 'in' / 'a.png'))
    metrics, _ = run(build_parser().parse_args([str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '--method', 'n2s',
                                                '--sigma', '80', '--device', 'cpu']))
    rec = json.load(open(tmp_path / 'out' / 'metrics.json'))['images'][0]
    assert rec['model'] == 'N2S_gauss25_color_ours.pth' == metrics['images'][0]['model']
    assert metrics['noise'] == 'gaussian' and metrics['level'] == 80
    err = capsys.readouterr().err
    assert "warning: a: sigma 80 is outside the shipped models' levels (25): denoised with the nearest, " \
           'N2S_gauss25_color_ours.pth' in err
