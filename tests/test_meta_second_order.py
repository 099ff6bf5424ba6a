"""tools/meta_second_order.py: the differentiable fill and the probe's resumable runs (random SkipNet, tiny crops)."""

import json
import os

import torch
import torch.nn.functional as F

from _framework import load_tool  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
SAMPLES = os.path.join(REPO, 'datasets', 'samples')


def _net():
    from basicsr_denoise.inference import load_network
    tool = load_tool('meta_second_order')
    torch.manual_seed(0)
    net, _, _ = load_network(None, tool.NETWORK)
    return tool, net.train()


def _inputs():
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(1, 3, 64, 64, generator=g)
    return clean, clean + 0.1 * torch.randn(clean.shape, generator=g)


def test_the_unrolled_fill_is_the_quick_fill_and_its_gradient_reaches_the_start_through_the_steps():
    tool, net = _net()
    clean, x = _inputs()
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_parameters()}
    buffers = dict(net.named_buffers())
    # one step: the ensemble takes the prediction made before the step, so the gradient is the plain one
    y1 = tool.unrolled_fill(net, theta, buffers, x, torch.Generator().manual_seed(2), 1)
    g1 = torch.autograd.grad(F.mse_loss(y1, clean), list(theta.values()))
    from basicsr_denoise.mpi.masking import ComplementaryMasks, MaskSampler
    masks = ComplementaryMasks(MaskSampler((30, 30), 'multchannel', 1))
    keep = masks.sample(x.shape, torch.Generator().manual_seed(2))[0]
    assert 0.25 < float(1 - keep.mean()) < 0.35
    direct = x + (1 - keep) * 0.1 * (net(x, keep) - x)
    torch.testing.assert_close(y1, direct)
    g_direct = torch.autograd.grad(F.mse_loss(direct, clean), list(net.parameters()))
    for a, b in zip(g1, g_direct):
        torch.testing.assert_close(a, b)
    # three steps: the last prediction depends on the start through two Adam steps (second order)
    y3 = tool.unrolled_fill(net, theta, buffers, x, torch.Generator().manual_seed(2), 3)
    g3 = torch.autograd.grad(F.mse_loss(y3, clean), list(theta.values()))
    assert all(torch.isfinite(g).all() for g in g3)
    assert max(float((a - b).abs().max()) for a, b in zip(g1, g3)) > 1e-6


def test_a_probe_run_writes_checkpoints_and_resumes_bit_exactly(tmp_path):
    tool, net = _net()
    start = tmp_path / 'start.pth'
    torch.save({'params': net.state_dict()}, start)
    common = ['--data', SAMPLES, '--weights', str(start), '--steps', '2', '--size', '64', '--save_every', '1']
    tool.main(common + ['--out', str(tmp_path / 'once'), '--iters', '3'])
    tool.main(common + ['--out', str(tmp_path / 'twice'), '--iters', '2'])
    tool.main(common + ['--out', str(tmp_path / 'twice'), '--iters', '3'])  # resumes at iteration 2
    a = torch.load(tmp_path / 'once' / 'net_3.pth')['params']
    b = torch.load(tmp_path / 'twice' / 'net_3.pth')['params']
    moved = torch.load(tmp_path / 'once' / 'net_1.pth')['params']
    assert all(torch.equal(a[k], b[k]) for k in a)  # weights, Adam, crops, noise and masks all resumed
    assert any(not torch.equal(moved[k], net.state_dict()[k]) for k in moved if 'running' not in k)
    log = [json.loads(line) for line in open(tmp_path / 'twice' / 'log.jsonl', encoding='utf-8')]
    assert [r['it'] for r in log] == [1, 2, 3]
