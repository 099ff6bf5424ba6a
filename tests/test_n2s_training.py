"""Noise2Score training on a CPU budget: the antithetic AR-DAE estimator, bf16 / channels-last steps,
carried training states (bit-exact resume on a fresh machine), tiled score inference."""

import json
import os

import pytest
import torch
from torch import nn

from basicsr_denoise.archs.arch_util import padded_forward, tile_starts, tiled_forward
from basicsr_denoise.checkpoint import safe_load
from basicsr_denoise.losses import build_loss
from basicsr_denoise.losses.ardae_loss import ARDAELoss
from basicsr_denoise.models import build_model
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.options import check_options

from _framework import REPO, load_tool

SAMPLES = os.path.join(REPO, 'datasets', 'samples')
ANTI_OPT = os.path.join(REPO, 'options', 'train', 'Noise2Score', 'train_N2S_gauss25_anti.yml')


class SmallNet(nn.Module):
    """A small non-linear image network (receptive-field radius 2)."""

    def __init__(self, ch=1, feat=6):
        super().__init__()
        torch.manual_seed(3)
        self.body = nn.Sequential(nn.Conv2d(ch, feat, 3, padding=1), nn.Tanh(), nn.Conv2d(feat, ch, 3, padding=1))

    def forward(self, x):
        return self.body(x)


def _gradient(net, loss_fn, y, draws, seed):
    """The estimator's gradient averaged over ``draws`` perturbations of the same image ``y``."""
    torch.manual_seed(seed)
    net.zero_grad()
    y_bar, u, s = loss_fn.perturb(y.expand(draws, -1, -1, -1), 1)
    loss_fn(net(y_bar), u, s).backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()]).clone()


# ------------------------------------------------------------------------------ the estimator
def test_antithetic_pairs_share_one_draw_with_opposite_signs():
    loss = ARDAELoss(sigma_max=0.02, sigma_min=0.02, total_iter=10, estimator='antithetic')
    y = torch.rand(3, 2, 8, 8)
    y_bar, u, s = loss.perturb(y, 1)
    assert y_bar.shape == (6, 2, 8, 8) and u.shape == (6, 2, 8, 8) and s == 0.02
    assert torch.equal(u[3:], -u[:3])
    torch.testing.assert_close(y_bar[:3] - y, s * u[:3])
    torch.testing.assert_close(y_bar[3:] - y, -s * u[:3])
    plain_bar, plain_u, _ = ARDAELoss(sigma_max=0.02, sigma_min=0.02, total_iter=10).perturb(y, 1)
    assert plain_bar.shape == y.shape and plain_u.shape == y.shape


def test_antithetic_expected_gradient_equals_the_papers():
    """Same expectation (many draws, a non-linear network), so the same minimiser: no bias."""
    net, y = SmallNet(), torch.rand(1, 1, 8, 8)
    kw = dict(sigma_max=0.3, sigma_min=0.3, total_iter=10)
    plain, anti = ARDAELoss(**kw), ARDAELoss(**kw, estimator='antithetic')
    g_plain = torch.stack([_gradient(net, plain, y, 20000, seed) for seed in range(4)])
    g_anti = torch.stack([_gradient(net, anti, y, 10000, 100 + seed) for seed in range(4)])
    # the standard error of the plain mean bounds the tolerance; the estimates agree within it
    se = g_plain.std(0) / 2 + g_anti.std(0) / 2
    diff = (g_plain.mean(0) - g_anti.mean(0)).abs()
    assert (diff <= 5 * se + 1e-4 * g_plain.mean(0).abs().max()).all()
    # and the two are not trivially both zero
    assert g_plain.mean(0).abs().max() > 10 * se.max()


def test_antithetic_gradient_variance_is_far_lower_at_small_sigma_a():
    net, y = SmallNet(), torch.rand(1, 1, 8, 8)
    kw = dict(sigma_max=0.01, sigma_min=0.01, total_iter=10)
    plain, anti = ARDAELoss(**kw), ARDAELoss(**kw, estimator='antithetic')
    g_plain = torch.stack([_gradient(net, plain, y, 2, seed) for seed in range(64)])
    g_anti = torch.stack([_gradient(net, anti, y, 1, seed) for seed in range(64)])  # same cost: 2 forwards
    ratio = g_anti.var(0).sum() / g_plain.var(0).sum()
    assert ratio < 0.05, f'antithetic / plain gradient variance {ratio:.3f}'


@pytest.mark.parametrize('block, key', [
    ({'type': 'ARDAELoss', 'estimator': 'control', 'total_iter': 10}, 'estimator'),
    ({'type': 'ARDAELoss', 'sigma_max': 0.01, 'sigma_min': 0.05, 'total_iter': 10}, 'sigma_min'),
    ({'type': 'ARDAELoss', 'sigma_max': 0.01, 'sigma_min': -1.0, 'total_iter': 10}, 'sigma_min'),
])
def test_bad_estimator_options_are_one_line_errors_naming_the_key(block, key):
    with pytest.raises(OptionError) as exc:
        build_loss(block, key='train.score_opt', source='opt.yml')
    msg = str(exc.value)
    assert 'train.score_opt' in msg and key in msg and '\n' not in msg


# ------------------------------------------------------------------------------ training precision
def _n2s_options(**train):
    opt = {
        'name': 'n2s_tiny', 'model_type': 'ScoreModel', 'num_gpu': 0, 'manual_seed': 0,
        'network_g': {'type': 'N2NUNet', 'num_in_ch': 3, 'num_out_ch': 3},
        'score': {'noise': {'type': 'Gaussian', 'sigma': 25}},
        'datasets': {'train': {'type': 'SingleImageDataset', 'dataroot_lq': 'unused',
                               'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0}},
        'train': {'optim_g': {'type': 'Adam', 'lr': 2e-4}, 'total_iter': 10,
                  'score_opt': {'type': 'ARDAELoss', 'estimator': 'antithetic', 'sigma_max': 0.02,
                                'sigma_min': 0.02}, **train},
    }
    opt = check_options(opt, True)
    opt['is_train'] = True
    return opt


def _one_step(**train):
    torch.manual_seed(0)
    model = build_model(_n2s_options(**train))
    model.feed_data({'lq': torch.rand(2, 3, 32, 32)})
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.optimize_parameters(1)
    return model, before


@pytest.mark.parametrize('train', [{}, {'autocast': 'bf16'}, {'channels_last': True},
                                   {'autocast': 'bf16', 'channels_last': True}])
def test_training_precision_options_take_a_finite_step(train):
    model, before = _one_step(**train)
    assert model.autocast_dtype == (torch.bfloat16 if train.get('autocast') else None)
    conv = model.net_g._block1[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) == bool(train.get('channels_last'))
    assert torch.isfinite(torch.tensor(model.log_dict['l_score']))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    assert all(p.dtype == torch.float32 for p in model.net_g.parameters())  # master weights stay fp32


def test_bf16_step_stays_close_to_fp32():
    m32, _ = _one_step()
    m16, _ = _one_step(autocast='bf16', channels_last=True)
    assert m16.log_dict['l_score'] == pytest.approx(m32.log_dict['l_score'], rel=1e-2)


def test_bad_autocast_is_a_one_line_error():
    with pytest.raises(OptionError, match=r'train\.autocast.*fp16'):
        build_model(_n2s_options(autocast='fp16'))


# ------------------------------------------------------------------------------ carried states
def _argv(total, extra=()):
    return ['-opt', ANTI_OPT, '--force_yml', f'datasets.train.dataroot_gt={SAMPLES}', 'datasets.train.gt_size=32',
            'datasets.train.batch_size_per_gpu=2', 'datasets.train.num_worker_per_gpu=0', 'datasets.val_1=~',
            f'train.total_iter={total}', 'num_gpu=0', 'logger.use_tb_logger=false', 'logger.print_freq=1',
            'logger.save_checkpoint_freq=2', *extra]


def test_carried_state_resumes_bit_exactly_on_a_fresh_machine(tmp_path):
    from basicsr_denoise.train import train_pipeline
    straight, machine_a, machine_b = tmp_path / 'straight', tmp_path / 'a', tmp_path / 'b'
    train_pipeline(root_path=str(straight), argv=_argv(6))
    train_pipeline(root_path=str(machine_a), argv=_argv(4))
    carried = machine_a / 'experiments' / 'pretrained_models' / 'in_progress' / 'N2S_gauss25_color_anti'
    # one pair, replaced at every save, with its fingerprint
    assert sorted(os.listdir(carried)) == ['4.state', 'net_g_4.pth', 'run.json']
    meta = json.loads((carried / 'run.json').read_text())
    assert meta['iter'] == 4 and meta['fingerprint']['train.score_opt']['estimator'] == 'antithetic'
    # "a fresh machine": only the committed folder travels
    dest = machine_b / 'experiments' / 'pretrained_models' / 'in_progress'
    dest.mkdir(parents=True)
    os.rename(carried, dest / 'N2S_gauss25_color_anti')
    train_pipeline(root_path=str(machine_b), argv=_argv(6, ['--auto_resume']))
    a = safe_load(str(straight / 'experiments' / 'N2S_gauss25_color_anti' / 'models' / 'net_g_6.pth'))
    b = safe_load(str(machine_b / 'experiments' / 'N2S_gauss25_color_anti' / 'models' / 'net_g_6.pth'))
    for name in a['params']:
        assert torch.equal(a['params'][name], b['params'][name]), name
    c = safe_load(str(dest / 'N2S_gauss25_color_anti' / 'net_g_6.pth'))  # and the carry moved on
    assert torch.equal(c['params'][name], b['params'][name])
    assert not (dest / 'N2S_gauss25_color_anti' / '4.state').exists()


@pytest.mark.parametrize('change, key', [
    (['train.score_opt.estimator=plain'], 'train.score_opt.estimator'),
    (['network_g.tied=false'], 'network_g.tied'),
])
def test_resuming_a_carried_state_with_other_options_is_a_one_line_error(tmp_path, change, key):
    from basicsr_denoise.train import train_pipeline
    train_pipeline(root_path=str(tmp_path), argv=_argv(2))
    exp = tmp_path / 'experiments' / 'N2S_gauss25_color_anti'
    for sub in ('models', 'training_states'):  # the local run is gone; the carried state remains
        for f in os.listdir(exp / sub):
            os.remove(exp / sub / f)
    with pytest.raises(OptionError) as exc:
        train_pipeline(root_path=str(tmp_path), argv=_argv(4, [*change, '--auto_resume']))
    msg = str(exc.value)
    assert key in msg and 'in_progress' in msg and '\n' not in msg


# ------------------------------------------------------------------------------ tiled inference
def test_tiles_cover_every_pixel_and_overlap():
    for length, tile, overlap in [(100, 32, 8), (512, 512, 64), (1000, 512, 64), (33, 32, 8)]:
        starts = tile_starts(length, tile, overlap)
        covered = torch.zeros(length, dtype=torch.bool)
        for s in starts:
            covered[s:s + tile] = True
        assert covered.all()
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize('shape', [(1, 1, 100, 77), (2, 1, 40, 130)])
def test_tiled_output_equals_untiled_when_the_receptive_field_fits_the_overlap(shape):
    net = SmallNet()  # receptive-field radius 2 <= overlap // 4
    x = torch.rand(shape)
    with torch.no_grad():
        whole = padded_forward(net, x, 1, 0)
        tiled = tiled_forward(net, x, tile=32, overlap=8, multiple=1, min_size=0)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6)


def test_tiling_defaults_to_large_images_only():
    calls = []

    def net(x):
        calls.append(tuple(x.shape[-2:]))
        return x

    tiled_forward(net, torch.zeros(1, 1, 64, 64), multiple=1)
    assert calls == [(64, 64)]
    calls.clear()
    tiled_forward(net, torch.zeros(1, 1, 1500, 1400), multiple=1)
    assert len(calls) == 4 * 3 and set(calls) == {(512, 512)}  # 448-px steps, the last tiles shifted in


def test_score_model_tiles_at_test_time(tmp_path):
    opt = _n2s_options()
    opt['score'].update(tile_size=64, tile_overlap=16)
    opt['is_train'] = False
    model = build_model(opt)
    y = torch.rand(1, 3, 100, 150)
    model.feed_data({'lq': y})
    model.test()
    tiled = model.output
    model.tile_size = 0
    model.test()
    assert tiled.shape == model.output.shape
    assert (tiled - model.output).abs().max() < 0.05  # a U-Net sees past the overlap: close, not equal


def test_bad_tile_overlap_is_an_option_error():
    opt = _n2s_options()
    opt['score'].update(tile_size=64, tile_overlap=64)
    with pytest.raises(OptionError, match='score.tile_overlap'):
        build_model(opt)


def test_estimator_tool_runs_two_variants_and_writes_its_table(tmp_path, monkeypatch):
    import sys
    tool = load_tool('n2s_recipes')
    doc = tmp_path / 'benchmarks.md'
    doc.write_text('# Benchmarks\n\n<!-- BEGIN benchmark: n2s-recipes -->\nold\n<!-- END benchmark: n2s-recipes -->\n'
                   '\n<!-- BEGIN benchmark: other -->\nkept\n<!-- END benchmark: other -->\n')
    monkeypatch.setattr(sys.modules['benchmarks._common'], 'BENCHMARKS_DOC', str(doc))
    argv = ['--minutes', '0.02', '--variants', 'paper,anti', '--val-images', '1', '--probe', '1',
            '--data', SAMPLES, '--val', SAMPLES, '--out', str(tmp_path), '--doc', 'n2s-recipes',
            '--set', 'datasets.train.batch_size_per_gpu=2', 'datasets.train.gt_size=64']
    results = tool.main(argv)
    assert [r['name'] for r in results] == ['paper', 'anti']
    for r in results:
        assert len(r['curve']) == 4 and r['iterations'] >= 1
    table = (tmp_path / 'estimators.md').read_text()
    assert '`paper`' in table and '`anti`' in table
    text = doc.read_text()  # the block replaced in place, its command and table inside; the other block kept
    assert 'old' not in text and 'kept' in text and text.count('BEGIN benchmark: n2s-recipes') == 1
    block = text.split('BEGIN benchmark: n2s-recipes -->', 1)[1].split('<!-- END', 1)[0]
    assert table.strip() in block and 'python benchmarks/n2s_recipes.py --minutes 0.02' in block
    doc.write_text('# Benchmarks\n')  # --render: the same block again from estimators.json, appended
    assert tool.main(['--out', str(tmp_path), '--render', '--doc', 'n2s-recipes']) == json.loads(
        (tmp_path / 'estimators.json').read_text())['results']
    assert doc.read_text().split('BEGIN benchmark: n2s-recipes -->', 1)[1].split('<!-- END', 1)[0] == block


def test_estimator_tool_equal_iterations_mode(tmp_path):
    tool = load_tool('n2s_recipes')
    results = tool.main(['--iterations', '4', '--variants', 'anti_fp32,anti', '--val-images', '1',
                         '--data', SAMPLES, '--val', SAMPLES, '--out', str(tmp_path),
                         '--set', 'datasets.train.batch_size_per_gpu=2', 'datasets.train.gt_size=64'])
    for r in results:
        assert r['iterations'] == 4 and [p['iter'] for p in r['curve']] == [1, 2, 3, 4]
    assert '| 4 it |' in (tmp_path / 'estimators.md').read_text()


def test_blockwise_tv_equals_the_whole_image_tv():
    from basicsr_denoise.noise.blind import tv_charbonnier
    x = torch.rand(2, 3, 37, 29)
    whole = tv_charbonnier(x, rows=10_000)
    for rows in (1, 2, 7, 36, 37):
        torch.testing.assert_close(tv_charbonnier(x, rows=rows), whole, rtol=1e-12, atol=1e-12)
    dh, dw = x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]
    direct = (torch.sqrt(dh.double() ** 2 + 1e-6).flatten(1).mean(1)
              + torch.sqrt(dw.double() ** 2 + 1e-6).flatten(1).mean(1))
    torch.testing.assert_close(whole, direct)


def test_in_progress_folder_defaults_under_pretrained_models_and_follows_path_in_progress(tmp_path):
    from basicsr_denoise.utils.carry import in_progress_dir
    opt = {'name': 'run1', 'path': {'root': str(tmp_path)}}
    assert in_progress_dir(opt) == os.path.join(str(tmp_path), 'experiments', 'pretrained_models', 'in_progress',
                                                'run1')
    opt['path']['in_progress'] = 'elsewhere/run1'
    assert in_progress_dir(opt) == os.path.join(str(tmp_path), 'elsewhere', 'run1')
    opt['path']['in_progress'] = str(tmp_path / 'abs')
    assert in_progress_dir(opt) == str(tmp_path / 'abs')
