"""MPI filling options of issue #10: automatic precision, the lr/beta schedules, several and complementary
masks per step, forward-only final passes and the shared-weights path for large images."""

import glob
import math
import os

import pytest
import torch

from basicsr_denoise.archs import build_network
from basicsr_denoise.mpi.filling import IterativeFiller, build_filler, masked_fill_loss, tile_boxes
from basicsr_denoise.mpi.masking import ComplementaryMasks, MaskSampler
from basicsr_denoise.utils import hardware
from basicsr_denoise.utils.errors import OptionError

TINY_NET = {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel',
            'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 3}}


class _Spy(torch.nn.Module):
    """A masked-network stand-in: ``fn(x)`` plus a parameter with zero gradient (Adam leaves it at 0).

    Every call is logged in the class-level :attr:`log` (the filler works on a deep copy).
    """

    log = []
    in_ch = 3

    def __init__(self, fn=torch.zeros_like, mask_channels=3):
        super().__init__()
        self.fn, self.mask_channels = fn, mask_channels
        self.mask_mode = 'multchannel' if mask_channels == 3 else 'singlechannel'
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, mask):
        _Spy.log.append({'shape': tuple(x.shape), 'mask': mask.detach().clone(), 'grad': torch.is_grad_enabled(),
                         'training': self.training, 'bf16': torch.is_autocast_enabled('cpu')
                         and torch.get_autocast_dtype('cpu') == torch.bfloat16,
                         'channels_last': x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()})
        return self.fn(x) + 0 * self.w


@pytest.fixture(autouse=True)
def _clear():
    _Spy.log.clear()
    hardware.cpu_has_native_bf16.cache_clear()
    yield
    _Spy.log.clear()
    hardware.cpu_has_native_bf16.cache_clear()


def _filler(ratio=(30, 30), mode='multchannel', **kw):
    kw.setdefault('iterations', 3)
    kw.setdefault('pad_multiple', 1)  # the stand-ins take any size: masks as large as the image
    return IterativeFiller(MaskSampler(ratio, mode), show_progress=False, **kw)


def _tiny(seed=0, **kw):
    torch.manual_seed(seed)
    return build_network({**TINY_NET, **kw})


# ------------------------------------------------------------------------------------------ precision
def test_hardware_detection_falls_back_to_fp32(monkeypatch):
    for probe in ('_is_avx512_bf16_supported', '_is_amx_tile_supported'):  # an older torch: no probes at all
        monkeypatch.delattr(torch.cpu, probe, raising=False)
    assert hardware.cpu_has_native_bf16() is False
    assert hardware.fast_precision('cpu') == (None, False)
    hardware.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(torch.cpu, '_is_avx512_bf16_supported', lambda: True, raising=False)
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: 'AVX2')  # kernels capped at AVX2
    assert hardware.fast_precision('cpu') == (None, False)
    hardware.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: 'AVX512')
    assert hardware.fast_precision('cpu') == ('bf16', True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: False)
    assert hardware.fast_precision('cuda') == (None, False)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)
    assert hardware.fast_precision('cuda:0') == ('bf16', True)
    assert hardware.fast_precision('mps') == (None, False)


def test_auto_without_native_bf16_is_exactly_fp32(monkeypatch):
    monkeypatch.setattr(hardware, 'cpu_has_native_bf16', lambda: False)
    net, x = _tiny(), torch.rand(1, 3, 16, 16)
    auto = _filler(autocast='auto', channels_last='auto')
    assert auto.precision(x.device) == (None, False)
    run = lambda f: f(net, x, torch.Generator().manual_seed(0))  # noqa: E731
    assert torch.equal(run(auto), run(_filler())) and torch.equal(run(_filler(autocast='fp32')), run(_filler()))


def test_auto_on_a_bf16_machine_picks_bf16_and_channels_last(monkeypatch):
    monkeypatch.setattr(hardware, 'fast_precision', lambda device: ('bf16', True))
    x = torch.rand(1, 3, 16, 16)
    f = _filler(autocast='auto', channels_last='auto', iterations=2, final_passes=1)
    assert f.precision(x.device) == ('bf16', True)
    out = f(_Spy(), x, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and len(_Spy.log) == 3
    assert all(c['bf16'] and c['channels_last'] for c in _Spy.log)
    # forced float32 stays float32 on the same machine; each of the pair resolves on its own
    assert _filler(autocast='fp32', channels_last='auto').precision(x.device) == (None, True)
    assert _filler(autocast='auto', channels_last=False).precision(x.device) == ('bf16', False)
    _Spy.log.clear()
    _filler(autocast='fp32', iterations=1)(_Spy(), x, torch.Generator().manual_seed(0))
    assert not _Spy.log[0]['bf16'] and not _Spy.log[0]['channels_last']


def test_the_authors_presets_and_parity_files_stay_fp32(monkeypatch):
    from _framework import REPO
    from basicsr_denoise.presets import AUTHORS_PRESETS, load_preset
    from basicsr_denoise.utils.options import load_yaml
    monkeypatch.setattr(hardware, 'fast_precision', lambda device: ('bf16', True))
    parity = glob.glob(os.path.join(REPO, 'options', 'test', 'MPI', 'test_MPI_syn_gauss25*.yml'))
    parity += glob.glob(os.path.join(REPO, 'options', 'test', 'MPI', 'test_MPI_bench_*.yml'))
    parity = [p for p in parity if not p.endswith('_quick.yml')]
    assert len(parity) >= 8
    blocks = [load_preset(p)['fill'] for p in AUTHORS_PRESETS] + [load_yaml(p)['fill'] for p in parity]
    for fill in blocks:
        assert fill['autocast'] == 'fp32' and fill['channels_last'] is False
        assert build_filler(fill, 'multchannel').precision(torch.device('cpu')) == (None, False)


def test_the_default_preset_is_quick_and_takes_the_fast_precision_only_where_native(monkeypatch):
    from _framework import REPO
    from basicsr_denoise.presets import DEFAULT_PRESET, load_preset
    from basicsr_denoise.utils.options import load_yaml
    assert DEFAULT_PRESET == 'quick'
    fill = load_preset('quick')['fill']
    assert load_yaml(os.path.join(REPO, 'options', 'test', 'MPI', 'test_MPI_syn_gauss25_quick.yml'))['fill'] == fill
    filler = build_filler(fill, 'multchannel')
    assert filler.complementary and filler.large_mode == 'shared' and filler.iterations < 200
    for native in (('bf16', True), (None, False)):
        monkeypatch.setattr(hardware, 'fast_precision', lambda device, native=native: native)
        assert filler.precision(torch.device('cpu')) == native


@pytest.mark.parametrize('key,value', [('autocast', 'fp8'), ('autocast', 'float32'), ('channels_last', 'yes'),
                                       ('channels_last', 1), ('lr_schedule', 'step'), ('lr_min', -1.0),
                                       ('lr_warmup', -1), ('lr_warmup', 2.5),
                                       ('beta_schedule', 'cosine'), ('beta_end', 1.5), ('masks_per_step', 0),
                                       ('complementary', 'yes'), ('final_passes', -1), ('large_mode', 'whole'),
                                       ('adapt_size', 0), ('adapt_iterations', 0),
                                       ('tile_passes', 0), ('by_area', 'large'),
                                       ('by_area.pixels', {'pixels': [4096], 'iterations': 9}),
                                       ('by_area.pixels', {'pixels': [4096, 1024]}),
                                       ('by_area.iterations', {'pixels': [1024, 4096], 'iterations': 0}),
                                       ('by_area.final_passes', {'pixels': [1024, 4096], 'final_passes': -1}),
                                       ('by_area.steps', {'pixels': [1024, 4096], 'steps': 9})])
def test_bad_values_are_one_line_errors_naming_the_key(key, value):
    with pytest.raises(OptionError) as exc:
        build_filler({key.split('.')[0]: value}, 'multchannel', source='f.yml')
    msg = str(exc.value)
    assert msg.startswith(f'f.yml: fill.{key}: ') and '\n' not in msg


def test_linear_beta_needs_beta_end_and_complementary_needs_a_hidden_ratio():
    with pytest.raises(OptionError, match=r'^fill\.beta_end: required by beta_schedule linear'):
        build_filler({'beta_schedule': 'linear'}, 'multchannel')
    with pytest.raises(OptionError, match=r'^fill\.complementary: needs a hidden ratio above 0'):
        build_filler({'complementary': True, 'mask_ratio': [0, 30]}, 'multchannel')


def test_schema_types_are_checked_by_the_denoiser():
    from basicsr_denoise.inference import MPIDenoiser
    for key, value in (('masks_per_step', 'two'), ('channels_last', 1.0), ('complementary', 1)):
        with pytest.raises(OptionError, match=rf'^src: fill\.{key}: expected'):
            MPIDenoiser(_tiny(), {key: value}, device='cpu', source='src')
    den = MPIDenoiser(_tiny(), {'autocast': 'auto', 'channels_last': 'auto', 'lr_schedule': 'cosine',
                                'beta_schedule': 'linear', 'beta_end': 0.99, 'large_mode': 'shared'}, device='cpu')
    assert den.filler.autocast == 'auto' and den.filler.beta_end == 0.99


# ------------------------------------------------------------------------------------------ schedules
def test_cosine_lr_is_the_lr_used_at_each_step():
    seen = []
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append(opt.param_groups[0]['lr']))
    try:
        _filler(iterations=5, lr=1e-2, lr_schedule='cosine', lr_min=1e-4)(_tiny(), torch.rand(1, 3, 8, 8),
                                                                             torch.Generator().manual_seed(0))
        constant = len(seen)
        _filler(iterations=2, lr=1e-2)(_tiny(), torch.rand(1, 3, 8, 8), torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    expected = [1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    assert constant == 5 and seen[:5] == pytest.approx(expected, rel=1e-12)
    assert seen[0] == pytest.approx(1e-2) and seen[4] == pytest.approx(1e-4) and seen[5:] == [1e-2, 1e-2]


def test_lr_warmup_ramps_the_lr_used_at_each_step_and_scales_the_first_adam_step():
    seen = []
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    handle = register_optimizer_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]['lr']))
    x, gen = torch.rand(1, 3, 8, 8), lambda: torch.Generator().manual_seed(0)
    try:
        _filler(iterations=6, lr=1e-2, lr_warmup=4)(_tiny(), x, gen())
        _filler(iterations=4, lr=1e-2, lr_warmup=3, lr_schedule='cosine', lr_min=1e-4)(_tiny(), x, gen())
    finally:
        handle.remove()
    assert seen[:6] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2, 1e-2], rel=1e-12)
    cosine = [1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi * t / 3)) / 2 for t in range(4)]
    assert seen[6:] == pytest.approx([c * min(1, (t + 1) / 3) for t, c in enumerate(cosine)], rel=1e-12)
    # Adam's first step moves a weight by about lr whatever its gradient: the ramp makes it lr / W
    moved = {}
    for warmup in (0, 4):
        net = _tiny()
        before = [p.detach().clone() for p in net.parameters()]
        f = _filler(iterations=1, lr=1e-2, lr_warmup=warmup)
        f.fill_once(net, x, gen(), after_step=lambda t, n, *_: moved.__setitem__(warmup, max(
            (a - b).abs().max().item() for a, b in zip(n.parameters(), before))))
    assert moved[0] == pytest.approx(1e-2, rel=1e-3) and moved[4] == pytest.approx(2.5e-3, rel=1e-3)


def test_linear_beta_is_the_beta_used_at_each_step():
    f = _filler(iterations=4, beta=0.5, beta_schedule='linear', beta_end=0.8, final_passes=2)
    assert [f.beta_at(t) for t in range(6)] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.8, 0.8])
    # every pixel hidden (100 %), prediction 0: ybar = x * prod(beta_t) over the steps and the final passes
    x = torch.rand(1, 3, 8, 8) + 0.5
    f.sampler = MaskSampler((100, 100))
    out = f(_Spy(), x, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x * (0.5 * 0.6 * 0.7 * 0.8 * 0.8 * 0.8), rtol=1e-6)
    const = _filler(ratio=(100, 100), iterations=4, beta=0.5)(_Spy(), x, torch.Generator().manual_seed(0))
    assert torch.allclose(const, x * 0.5**4, rtol=1e-6)


def test_masks_per_step_stacks_k_masks_averages_the_loss_and_updates_with_each():
    x = torch.rand(1, 3, 12, 12) + 0.5
    out = _filler(iterations=2, beta=0.5, masks_per_step=3)(_Spy(), x, torch.Generator().manual_seed(0))
    assert [c['shape'] for c in _Spy.log] == [(3, 3, 12, 12)] * 2
    masks = torch.cat([c['mask'] for c in _Spy.log])  # 6 masks, all different
    assert all(not torch.equal(masks[i], masks[j]) for i in range(6) for j in range(i))
    hidden_times = (1 - masks).sum(0, keepdim=True)  # prediction 0: each hidden mask halves the pixel
    assert torch.allclose(out, x * 0.5**hidden_times, rtol=1e-6)
    # the loss of a step is the mean of the K masks' losses
    f, net = _filler(masks_per_step=2), _tiny()
    loss = f.step(net, torch.optim.Adam(net.parameters(), lr=0.0), x, x.clone(), torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # the step's two draws, replayed
    keeps = [MaskSampler((30, 30)).sample(x.shape, gen)[0] for _ in range(2)]
    with torch.no_grad():
        pred = net(torch.cat([x, x]), torch.cat(keeps))  # same BatchNorm batch as the step
    per_mask = [masked_fill_loss(pred[k:k + 1], x, keeps[k]) for k in range(2)]
    assert loss.item() == pytest.approx(sum(per_mask).item() / 2, rel=1e-5)


def test_complementary_masks_cover_every_pixel_once_per_cycle():
    gen = torch.Generator().manual_seed(0)
    masks = ComplementaryMasks(MaskSampler((30, 30), 'multchannel'))
    drawn = [masks.sample((2, 3, 7, 9), gen)[0] for _ in range(4)]  # 63 units, 19 hidden: cycles of 4
    assert masks.cycle_length() == 4 and all(m.shape == (2, 3, 7, 9) for m in drawn)
    assert all(((1 - m).sum((2, 3)) == 19).all() for m in drawn)  # exactly round(0.3 * 63) per channel
    assert bool((torch.stack(drawn).min(0).values == 0).all())  # every element hidden in the cycle
    assert not torch.equal(drawn[0][:, 0], drawn[0][:, 1]) and not torch.equal(drawn[0][0], drawn[0][1])
    single = ComplementaryMasks(MaskSampler((20, 40), 'singlechannel', patch_size=2))
    for _ in range(3):  # a ratio range: each cycle draws its own ratio
        first = single.sample((1, 3, 7, 9), gen)[0]
        cycle = [first] + [single.sample((1, 3, 7, 9), gen)[0] for _ in range(single.cycle_length() - 1)]
        assert first.shape == (1, 1, 7, 9) and bool((torch.stack(cycle).min(0).values == 0).all())
        assert torch.equal(first[..., 0:2, 0:2], first[..., 0:1, 0:1].expand(1, 1, 2, 2))  # 2x2 patches


@pytest.mark.parametrize('mode', ['multchannel', 'singlechannel'])
def test_complementary_filling_hides_every_pixel_within_a_cycle(mode):
    ch = 3 if mode == 'multchannel' else 1
    x = torch.rand(1, 3, 16, 16)
    _filler(ratio=(30, 30), mode=mode, iterations=4, complementary=True)(_Spy(mask_channels=ch), x,
                                                                           torch.Generator().manual_seed(0))
    masks = torch.stack([c['mask'] for c in _Spy.log])  # 256 pixels, 77 hidden: a cycle of 4 steps
    assert masks.shape == (4, 1, ch, 16, 16) and bool((masks.min(0).values == 0).all())
    _Spy.log.clear()  # K = cycle length: one step's masks split a permutation into K groups
    _filler(ratio=(30, 30), mode=mode, iterations=1, complementary=True, masks_per_step=4)(
        _Spy(mask_channels=ch), x, torch.Generator().manual_seed(0))
    assert bool((_Spy.log[0]['mask'].min(0).values == 0).all())
    _Spy.log.clear()  # independent masks do not cover a 16x16 image in 4 steps
    _filler(ratio=(30, 30), mode=mode, iterations=4)(_Spy(mask_channels=ch), x, torch.Generator().manual_seed(0))
    assert not bool((torch.stack([c['mask'] for c in _Spy.log]).min(0).values == 0).all())


def test_final_passes_are_forward_only_in_the_same_bn_mode_and_update_the_ensemble():
    x = torch.rand(1, 3, 12, 12) + 0.5
    out = _filler(iterations=2, beta=0.5, final_passes=3)(_Spy(), x, torch.Generator().manual_seed(0))
    assert [c['grad'] for c in _Spy.log] == [True, True, False, False, False]
    assert all(c['training'] for c in _Spy.log)
    hidden_times = sum(1 - c['mask'] for c in _Spy.log)
    assert torch.allclose(out, x * 0.5**hidden_times, rtol=1e-6)  # each pass moved its hidden pixels
    _Spy.log.clear()
    _filler(iterations=1, bn_mode='eval', final_passes=1)(_Spy(), x, torch.Generator().manual_seed(0))
    assert [c['training'] for c in _Spy.log] == [False, False]


def test_a_frozen_template_is_fine_tuned_and_left_frozen():
    net, x = _tiny(), torch.rand(1, 3, 16, 16)
    moving = _filler(iterations=3, lr=1e-2)(net, x, torch.Generator().manual_seed(0))
    net.requires_grad_(False)  # e.g. a training run's EMA copy
    frozen = _filler(iterations=3, lr=1e-2)(net, x, torch.Generator().manual_seed(0))
    assert torch.equal(moving, frozen) and not any(p.requires_grad for p in net.parameters())


# ------------------------------------------------------------------------------------------ large images
def _shared(**kw):
    kw = {'iterations': 3, 'tile_size': 32, 'tile_overlap': 8, 'pad_multiple': 8, 'large_mode': 'shared', **kw}
    return _filler(**kw)


@pytest.mark.parametrize('shuffle,mode', [(1, 'multchannel'), (2, 'singlechannel')])
def test_shared_large_mode_covers_every_pixel(shuffle, mode):
    x = torch.rand(1, 3, 75, 90)
    # the stand-in predicts x + 1 whatever the mask: every output pixel must be a hidden-pixel prediction
    net = _Spy(lambda t: t + 1, mask_channels=3 if mode == 'multchannel' else 1)
    f = _shared(ratio=(90, 90) if mode == 'singlechannel' else (30, 30), mode=mode, shuffle=shuffle,
                tile_size=16 if shuffle == 2 else 32, final_passes=1)
    out = f(net, x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.allclose(out, x + 1, atol=1e-6)
    assert all((1 - c['mask']).sum() > 0 for c in _Spy.log)


def test_shared_large_mode_adapts_once_then_fills_tiles_forward_only_with_bounded_inputs():
    net, seen = _tiny(), []
    net.register_forward_pre_hook(lambda m, args: seen.append((tuple(args[0].shape), torch.is_grad_enabled())))
    x = torch.rand(1, 3, 80, 72)
    out = _shared(iterations=4, final_passes=5)(net, x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.isfinite(out).all()
    tiles = len(tile_boxes(80, 32, 8)) * len(tile_boxes(72, 32, 8))
    train = [s for s, g in seen if g]
    forward = [s for s, g in seen if not g]
    assert train == [(1, 3, 32, 32)] * 4  # T steps on crops, whatever the number of tiles
    assert len(forward) == tiles * 5 and all(s == (1, 3, 32, 32) for s in forward)  # one tile at a time
    assert max(max(s[-2:]) for s, _ in seen) <= 32


def test_shared_large_mode_adapts_on_crops_of_adapt_size_and_fills_whole_tiles():
    net, seen = _tiny(), []
    net.register_forward_pre_hook(lambda m, args: seen.append((tuple(args[0].shape), torch.is_grad_enabled())))
    x = torch.rand(1, 3, 80, 72)
    _shared(iterations=3, final_passes=2, adapt_size=16)(net, x, torch.Generator().manual_seed(0))
    assert [s for s, g in seen if g] == [(1, 3, 16, 16)] * 3
    assert {s for s, g in seen if not g} == {(1, 3, 32, 32)}
    seen.clear()  # a crop side above the image's is cut to the image
    _shared(iterations=2, final_passes=1, tile_size=32, adapt_size=64)(net, torch.rand(1, 3, 40, 24),
                                                                      torch.Generator().manual_seed(0))
    assert [s for s, g in seen if g] == [(1, 3, 40, 24)] * 2


def test_adapt_iterations_and_tile_passes_set_the_shared_path_and_leave_whole_images_alone():
    net, seen = _tiny(), []
    net.register_forward_pre_hook(lambda m, args: seen.append((tuple(args[0].shape), torch.is_grad_enabled())))
    f = _shared(iterations=2, adapt_iterations=5, tile_passes=5, adapt_size=16)
    f(net, torch.rand(1, 3, 80, 72), torch.Generator().manual_seed(0))
    tiles = len(tile_boxes(80, 32, 8)) * len(tile_boxes(72, 32, 8))
    assert [s for s, g in seen if g] == [(1, 3, 16, 16)] * 5
    assert len([s for s, g in seen if not g]) == 5 * tiles
    assert f.iterations == 2 and f.adapt_iterations == 5  # the filler itself is unchanged
    seen.clear()  # an image within one tile: the whole-image schedule, T = iterations, no passes
    f(net, torch.rand(1, 3, 24, 24), torch.Generator().manual_seed(0))
    assert [g for _, g in seen] == [True, True]


def test_snapshot_steps_spread_over_the_memory_of_the_running_ensemble():
    f = _filler(iterations=75, beta=0.9)  # 30 % hidden: a pixel's weight decays by 0.97 a step, ~33 steps
    steps = f.snapshot_steps(16)
    assert len(steps) == 16 == len(set(steps)) and steps[-1] == 74 and 74 - 34 <= steps[0] <= 74 - 30
    assert _filler(iterations=5, beta=0.9).snapshot_steps(16) == [0, 1, 2, 3, 4]  # a short run: every step
    long = _filler(ratio=(90, 90), mode='singlechannel', iterations=800, beta=0.99).snapshot_steps(8)
    assert long[-1] == 799 and 799 - 111 < long[0] <= 799 - 111 * 7 // 8  # 1 / (0.9 * 0.01) = 111 steps


def test_shared_forward_passes_cycle_through_snapshots_of_the_last_steps():
    net, seen = _tiny(), []
    net.register_forward_pre_hook(  # deep copies keep the hook: log each call's weights
        lambda m, args: seen.append((torch.is_grad_enabled(), sum(float(p.detach().sum()) for p in m.parameters()))))
    f = _shared(iterations=6, final_passes=4, lr=1e-2)
    f(net, torch.rand(1, 3, 80, 72), torch.Generator().manual_seed(0))
    train = [w for g, w in seen if g]
    forward = [w for g, w in seen if not g]
    steps = f.snapshot_steps(4)
    assert len(steps) == 4 and steps[-1] == 5
    tiles = len(tile_boxes(80, 32, 8)) * len(tile_boxes(72, 32, 8))
    assert len(forward) == 4 * tiles and forward == forward[:4] * tiles  # every tile: the same 4 states
    assert len(set(forward[:4])) == 4  # four different states of the adapted copy
    for i, s in enumerate(steps[:-1]):  # the state after step s is the one step s + 1 trained
        assert forward[i] == pytest.approx(train[s + 1], rel=1e-6)


def test_shared_large_mode_crops_come_from_the_seeded_generator():
    x = torch.arange(64 * 64, dtype=torch.float32).view(1, 1, 64, 64).expand(1, 3, 64, 64).contiguous()
    picks = []
    for seed in (0, 0, 1):
        seen = []
        net = _Spy(lambda t: (seen.append(t[0, 0, 0, 0].item()) or t))
        _shared(iterations=6, tile_size=16, final_passes=1)(net, x, torch.Generator().manual_seed(seed))
        picks.append(seen[:6])  # the top-left value of each adaptation crop = its position
    assert picks[0] == picks[1] and picks[0] != picks[2] and len(set(picks[0])) > 1


@pytest.mark.parametrize('opts', [
    {'lr_schedule': 'cosine', 'lr_min': 1e-5}, {'lr_warmup': 2}, {'beta_schedule': 'linear', 'beta_end': 0.99},
    {'masks_per_step': 2}, {'complementary': True}, {'complementary': True, 'mask_ratio': [20, 40]},
    {'final_passes': 2}, {'large_mode': 'shared', 'tile_size': 16, 'tile_overlap': 4},
    {'large_mode': 'shared', 'tile_size': 16, 'tile_overlap': 4, 'masks_per_step': 2, 'final_passes': 3},
    {'autocast': 'auto', 'channels_last': 'auto'},
    {'by_area': {'pixels': [100, 400], 'iterations': 5, 'final_passes': 2}}])
def test_seeds_repeat_exactly_with_every_new_option(monkeypatch, opts):
    monkeypatch.setattr(hardware, 'fast_precision', lambda device: ('bf16', True))
    net, x = _tiny(), torch.rand(1, 3, 24, 20)
    f = build_filler({'iterations': 3, 'progress': False, **opts}, 'multchannel')
    run = lambda filler, seed: filler(net, x, torch.Generator().manual_seed(seed))  # noqa: E731
    a, b, c = run(f, 3), run(f, 3), run(f, 4)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == x.shape
    plain = build_filler({'iterations': 3, 'progress': False, **{k: v for k, v in opts.items() if k in
                                                                 ('tile_size', 'tile_overlap', 'mask_ratio')}},
                         'multchannel')
    assert not torch.equal(a, run(plain, 3))  # and the option changes the result


# ------------------------------------------------------------------------------------------ by image size
def test_by_area_interpolates_steps_and_passes_in_log_area():
    f = _filler(iterations=10, final_passes=0, by_area={'pixels': [100, 10000], 'iterations': 30, 'final_passes': 20})
    assert [(g.iterations, g.final_passes) for g in map(f.for_area, (50, 100, 1000, 10000, 10**6))] == \
        [(10, 0), (10, 0), (20, 10), (30, 20), (30, 20)]
    assert f.for_area(100) is f and f.iterations == 10  # the filler itself is never changed
    assert _filler(by_area=None).for_area(10**6).iterations == 3
    f = _filler(iterations=10, final_passes=4, by_area={'pixels': [100, 10000]})  # unset: the base values
    assert (f.for_area(10**6).iterations, f.for_area(10**6).final_passes) == (10, 4)


@pytest.mark.parametrize('size,steps,passes', [(8, 2, 0), (16, 3, 1), (32, 4, 2)])
def test_each_image_and_each_tile_gets_the_steps_and_passes_of_its_size(size, steps, passes):
    f = _filler(iterations=2, by_area={'pixels': [64, 1024], 'iterations': 4, 'final_passes': 2})
    f(_Spy(), torch.rand(1, 3, size, size), torch.Generator().manual_seed(0))
    assert [c['grad'] for c in _Spy.log] == [True] * steps + [False] * passes
    _Spy.log.clear()  # tiles of 16 px within a 40-px image: each tile has the steps of 256 pixels
    f.tile_size, f.tile_overlap = 16, 4
    f(_Spy(), torch.rand(1, 3, 40, 40), torch.Generator().manual_seed(0))
    tiles = len(tile_boxes(40, 16, 4)) ** 2
    assert [c['grad'] for c in _Spy.log] == ([True] * 3 + [False]) * tiles
