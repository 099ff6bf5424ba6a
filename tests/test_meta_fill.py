"""MetaFillPretrainModel: first-order meta-learning of MPI's weights for the zero-shot fill (issue #10)."""

import os

import pytest
import torch

from basicsr_denoise.utils.checkpoint import safe_load
from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.options import parse_options

from _framework import REPO  # noqa: E402
from test_pretrain import _images  # noqa: E402

OPT = os.path.join(REPO, 'options', 'train', 'MPI', 'pretrain_MPI_syn_meta_cpu.yml')


def _overrides(data, total_iter, *extra):
    return [f'datasets.train.dataroot_gt={data}', 'datasets.train.gt_size=64', 'datasets.train.num_worker_per_gpu=0',
            f'train.total_iter={total_iter}', 'logger.print_freq=1', 'logger.save_checkpoint_freq=2',
            'logger.use_tb_logger=false', 'name=meta_tiny', 'datasets.val_1=~', 'path.pretrain_network_g=~',
            'num_gpu=0', 'train.meta.fill={iterations: 3, lr: 4.0e-3, complementary: true}', 'train.meta.outer_steps=2',
            *extra]


def _model(tmp_path, *extra):
    from basicsr_denoise.models import build_model
    opt, _ = parse_options(True, ['-opt', OPT, '--force_yml', *_overrides(str(tmp_path), 2, *extra)],
                           root=str(tmp_path))
    opt['dist'], opt['rank'], opt['world_size'] = False, 0, 1
    torch.manual_seed(0)
    return build_model(opt)


def test_with_one_fill_step_the_meta_gradient_is_the_clean_targets_gradient_at_the_start(tmp_path):
    """First order, one step: the adapted copy is the start itself, so the gradient handed to the outer
    optimiser must be that of the hidden pixels' error against the clean crop, for the same noise and mask."""
    from basicsr_denoise.mpi.filling import masked_fill_loss
    model = _model(tmp_path, 'train.meta.fill={iterations: 1, autocast: fp32, channels_last: false}',
                   'train.meta.outer_steps=1', 'train.input_noise={noises: [{type: Gaussian, sigma: 40}]}')
    net = model.net_g
    start = {k: v.clone() for k, v in net.state_dict().items()}
    gt = torch.rand(1, 3, 64, 64)
    model.feed_data({'gt': gt})
    model.optimizer_g.step = lambda: None  # keep the weights and the gradient for the comparison
    torch.manual_seed(5)
    model.optimize_parameters(1)
    got = [p.grad.clone() for p in net.parameters()]

    reference = _model(tmp_path).net_g
    reference.load_state_dict(start)
    reference.train()
    torch.manual_seed(5)
    noisy = model.input_noise(gt)
    keep = model.filler.sampler.sample(gt.shape, None)[0]
    loss = masked_fill_loss(reference(noisy, keep), gt, keep)
    want = torch.autograd.grad(loss, list(reference.parameters()))
    assert float(loss.detach()) == pytest.approx(model.log_dict['l_meta'], rel=1e-5)
    assert (noisy - gt).std() * 255 == pytest.approx(40, rel=0.05)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-7)
    assert any(float(w.abs().max()) > 0 for w in want)


def test_a_meta_iteration_moves_the_weights_and_repeats_exactly(tmp_path):
    def run():
        model = _model(tmp_path)
        before = [p.detach().clone() for p in model.net_g.parameters()]
        model.feed_data({'gt': torch.linspace(0, 1, 3 * 64 * 64).view(1, 3, 64, 64)})
        torch.manual_seed(7)
        model.optimize_parameters(1)
        return before, [p.detach().clone() for p in model.net_g.parameters()], model.log_dict

    before, after, log = run()
    _, again, log2 = run()
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
    assert all(torch.equal(a, b) for a, b in zip(after, again))
    assert log == log2 and 0 < log['l_meta'] < log['l_fill']  # the noisy target is further than the clean one


def test_outer_steps_default_to_the_running_ensembles_memory(tmp_path):
    model = _model(tmp_path, 'train.meta.fill={iterations: 75, beta: 0.9, mask_ratio: [30, 30]}',
                   'train.meta.outer_steps=~')
    assert model.outer_steps == 33  # 1 / (0.3 * (1 - 0.9))
    model = _model(tmp_path, 'train.meta.fill={iterations: 20, beta: 0.9}', 'train.meta.outer_steps=~')
    assert model.outer_steps == 20  # at most the fill's steps


@pytest.mark.parametrize('extra, match', [
    (['train.input_noise=~'], r'train\.input_noise: required'),
    (['train.meta.outer_steps=0'], r'train\.meta\.outer_steps: must be an integer in \[1, 3\]'),
    (['train.meta.outer_steps=4'], r'train\.meta\.outer_steps'),
    (['train.meta.fill={iterations: 3, final_passes: 2}'], r'train\.meta\.fill: final_passes'),
    (['train.meta.fill={iterations: 3, lr_schedule: fast}'], r'fill\.lr_schedule'),
])
def test_bad_meta_options_name_the_key(tmp_path, extra, match):
    with pytest.raises(OptionError, match=match):
        _model(tmp_path, *extra)


def test_a_carried_meta_state_resumes_bit_exactly_and_refuses_another_fill(tmp_path):
    from basicsr_denoise.train import train_pipeline
    data = _images(str(tmp_path / 'data'), n=2, size=72, corrupt=False)

    def argv(root, total_iter, *extra):
        return ['-opt', OPT, *extra, '--force_yml', *_overrides(data, total_iter), 'logger.save_in_progress=true',
                f'path.in_progress={root}/carried']

    whole = tmp_path / 'whole'
    train_pipeline(root_path=str(whole), argv=argv(whole, 4))
    split = tmp_path / 'split'
    train_pipeline(root_path=str(split), argv=argv(split, 2))
    for sub in ('models', 'training_states'):  # a fresh machine: only the carried state is left
        exp = split / 'experiments' / 'meta_tiny' / sub
        for f in os.listdir(exp):
            os.remove(exp / f)
    with pytest.raises(OptionError, match=r'train\.meta\.fill\.lr'):
        train_pipeline(root_path=str(split), argv=argv(split, 4, '--auto_resume') + [
            'train.meta.fill={iterations: 3, lr: 1.0e-3, complementary: true}'])
    train_pipeline(root_path=str(split), argv=argv(split, 4, '--auto_resume'))
    a = safe_load(str(whole / 'experiments' / 'meta_tiny' / 'models' / 'net_g_4.pth'))
    b = safe_load(str(split / 'experiments' / 'meta_tiny' / 'models' / 'net_g_4.pth'))
    for key in ('params', 'params_ema'):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
