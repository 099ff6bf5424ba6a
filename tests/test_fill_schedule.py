"""MPI filling options beyond the paper: automatic precision, the lr ramp, complementary masks, steps by image
size and the shared-weights path for large images; and the one fill configuration (``~`` is the default)."""

import glob
import os

import pytest
import torch

from basicsr_denoise.archs import build_network
from basicsr_denoise.mpi.fill_config import FIELDS, FILL_SCHEMA, FillConfig
from basicsr_denoise.mpi.filling import IterativeFiller, build_filler, tile_boxes
from basicsr_denoise.mpi.large_image import snapshot_steps
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
    return IterativeFiller(MaskSampler(ratio, mode), FillConfig.from_block({'progress': False, **kw}))


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
    f = _filler(autocast='auto', channels_last='auto', iterations=3)
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
                                       ('channels_last', 1), ('iterations', 0), ('lr', 0.0), ('beta', 1.5),
                                       ('lr_warmup', -1), ('lr_warmup', 2.5), ('shuffle', 0), ('tile_overlap', -1),
                                       ('complementary', 'yes'), ('large_mode', 'whole'),
                                       ('adapt_size', 0), ('adapt_iterations', 0),
                                       ('tile_passes', 0), ('by_area', 'large'),
                                       ('by_area.pixels', {'pixels': [4096], 'iterations': 9}),
                                       ('by_area.pixels', {'pixels': [4096, 1024]}),
                                       ('by_area.iterations', {'pixels': [1024, 4096], 'iterations': 0}),
                                       ('by_area.final_passes', {'pixels': [1024, 4096], 'final_passes': 1}),
                                       ('lr_schedule', 'cosine'), ('masks_per_step', 2), ('final_passes', 1)])
def test_bad_values_are_one_line_errors_naming_the_key(key, value):
    with pytest.raises(OptionError) as exc:
        build_filler({key.split('.')[0]: value}, 'multchannel', source='f.yml')
    msg = str(exc.value)
    assert msg.startswith(f'f.yml: fill.{key}: ') and '\n' not in msg


def test_complementary_needs_a_hidden_ratio():
    with pytest.raises(OptionError, match=r'^fill\.complementary: needs a hidden ratio above 0'):
        build_filler({'complementary': True, 'mask_ratio': [0, 30]}, 'multchannel')


def test_schema_types_are_checked_by_the_denoiser():
    from basicsr_denoise.inference import MPIDenoiser
    for key, value in (('lr_warmup', 'two'), ('channels_last', 1.0), ('complementary', 1)):
        with pytest.raises(OptionError, match=rf'^src: fill\.{key}: expected'):
            MPIDenoiser(_tiny(), {key: value}, device='cpu', source='src')
    den = MPIDenoiser(_tiny(), {'autocast': 'auto', 'channels_last': 'auto', 'lr_warmup': 3, 'large_mode': 'shared'},
                      device='cpu')
    assert den.filler.autocast == 'auto' and den.filler.lr_warmup == 3 and den.filler.large_mode == 'shared'


def test_a_tilde_is_the_default_for_every_key():
    from basicsr_denoise.inference import MPIDenoiser
    assert FillConfig.from_block({name: None for name in FILL_SCHEMA}) == FillConfig()
    assert [getattr(FillConfig(), f.name) for f in FIELDS] == [f.default for f in FIELDS]
    f = build_filler({'iterations': None, 'lr': None, 'by_area': {'pixels': [10, 20], 'iterations': None}},
                     'multchannel')
    assert (f.iterations, f.lr, f.by_area['iterations']) == (200, 2e-3, 200)
    den = MPIDenoiser(_tiny(), {'iterations': None, 'lr': None, 'progress': False}, device='cpu')
    assert den.filler.config == FillConfig(progress=False)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(build_filler({'iterations': 2, 'lr': None, 'progress': False}, 'multchannel')(
        _tiny(), x, torch.Generator().manual_seed(0)), _filler(iterations=2, pad_multiple=32)(
        _tiny(), x, torch.Generator().manual_seed(0)))


def test_the_configuration_doc_is_generated_from_the_one_schema():
    import importlib.util
    from _framework import REPO
    from basicsr_denoise.inference import SCORE_DOCS, SCORE_SCHEMA
    path = os.path.join(REPO, 'docs', 'make_configuration.py')
    spec = importlib.util.spec_from_file_location('make_configuration', path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    doc = open(os.path.join(REPO, 'docs', 'configuration.md'), encoding='utf-8').read()
    assert doc == gen.render(), 'docs/configuration.md is stale: run python docs/make_configuration.py'
    assert all(f'| `{f.name}` |' in doc for f in FIELDS) and list(SCORE_DOCS) == list(SCORE_SCHEMA)


# ------------------------------------------------------------------------------------------ schedules
def test_lr_warmup_ramps_the_lr_used_at_each_step_and_scales_the_first_adam_step():
    seen = []
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    handle = register_optimizer_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]['lr']))
    x, gen = torch.rand(1, 3, 8, 8), lambda: torch.Generator().manual_seed(0)
    try:
        _filler(iterations=6, lr=1e-2, lr_warmup=4)(_tiny(), x, gen())
        _filler(iterations=2, lr=1e-2)(_tiny(), x, gen())
    finally:
        handle.remove()
    assert seen == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2, 1e-2, 1e-2, 1e-2], rel=1e-12)
    # Adam's first step moves a weight by about lr whatever its gradient: the ramp makes it lr / W
    moved = {}
    for warmup in (0, 4):
        f = _filler(iterations=1, lr=1e-2, lr_warmup=warmup)
        net, optimizer, _ = f.fresh_net(_tiny(), x.device)
        before = [p.detach().clone() for p in net.parameters()]
        f.step(net, optimizer, x, None, gen(), t=0)
        moved[warmup] = max((a - b).abs().max().item() for a, b in zip(net.parameters(), before))
    assert moved[0] == pytest.approx(1e-2, rel=1e-3) and moved[4] == pytest.approx(2.5e-3, rel=1e-3)


def test_the_ensemble_takes_beta_at_each_hidden_pixel():
    # every pixel hidden (100 %), prediction 0: ybar = x * beta^T
    x = torch.rand(1, 3, 8, 8) + 0.5
    const = _filler(ratio=(100, 100), iterations=4, beta=0.5)(_Spy(), x, torch.Generator().manual_seed(0))
    assert torch.allclose(const, x * 0.5**4, rtol=1e-6)


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
    _Spy.log.clear()  # independent masks do not cover a 16x16 image in 4 steps
    _filler(ratio=(30, 30), mode=mode, iterations=4)(_Spy(mask_channels=ch), x, torch.Generator().manual_seed(0))
    assert not bool((torch.stack([c['mask'] for c in _Spy.log]).min(0).values == 0).all())


def test_bn_mode_eval_fills_with_the_running_statistics():
    x = torch.rand(1, 3, 12, 12) + 0.5
    _filler(iterations=2)(_Spy(), x, torch.Generator().manual_seed(0))
    assert [c['training'] for c in _Spy.log] == [True, True]
    _Spy.log.clear()
    _filler(iterations=2, bn_mode='eval')(_Spy(), x, torch.Generator().manual_seed(0))
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
                tile_size=16 if shuffle == 2 else 32, tile_passes=1)
    out = f(net, x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.allclose(out, x + 1, atol=1e-6)
    assert all((1 - c['mask']).sum() > 0 for c in _Spy.log)


def test_shared_large_mode_adapts_once_then_fills_tiles_forward_only_with_bounded_inputs():
    net, seen = _tiny(), []
    net.register_forward_pre_hook(lambda m, args: seen.append((tuple(args[0].shape), torch.is_grad_enabled())))
    x = torch.rand(1, 3, 80, 72)
    out = _shared(iterations=4, tile_passes=5)(net, x, torch.Generator().manual_seed(0))
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
    _shared(iterations=3, tile_passes=2, adapt_size=16)(net, x, torch.Generator().manual_seed(0))
    assert [s for s, g in seen if g] == [(1, 3, 16, 16)] * 3
    assert {s for s, g in seen if not g} == {(1, 3, 32, 32)}
    seen.clear()  # a crop side above the image's is cut to the image
    _shared(iterations=2, tile_passes=1, tile_size=32, adapt_size=64)(net, torch.rand(1, 3, 40, 24),
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
    f = _filler(beta=0.9)  # 30 % hidden: a pixel's weight decays by 0.97 a step, ~33 steps
    steps = snapshot_steps(f, 16, 75)
    assert len(steps) == 16 == len(set(steps)) and steps[-1] == 74 and 74 - 34 <= steps[0] <= 74 - 30
    assert snapshot_steps(f, 16, 5) == [0, 1, 2, 3, 4]  # a short run: every step
    long = snapshot_steps(_filler(ratio=(90, 90), mode='singlechannel', beta=0.99), 8, 800)
    assert long[-1] == 799 and 799 - 111 < long[0] <= 799 - 111 * 7 // 8  # 1 / (0.9 * 0.01) = 111 steps


def test_shared_forward_passes_cycle_through_snapshots_of_the_last_steps():
    net, seen = _tiny(), []
    net.register_forward_pre_hook(  # deep copies keep the hook: log each call's weights
        lambda m, args: seen.append((torch.is_grad_enabled(), sum(float(p.detach().sum()) for p in m.parameters()))))
    f = _shared(iterations=6, tile_passes=4, lr=1e-2)
    f(net, torch.rand(1, 3, 80, 72), torch.Generator().manual_seed(0))
    train = [w for g, w in seen if g]
    forward = [w for g, w in seen if not g]
    steps = snapshot_steps(f, 4, f.iterations)
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
        _shared(iterations=6, tile_size=16, tile_passes=1)(net, x, torch.Generator().manual_seed(seed))
        picks.append(seen[:6])  # the top-left value of each adaptation crop = its position
    assert picks[0] == picks[1] and picks[0] != picks[2] and len(set(picks[0])) > 1


@pytest.mark.parametrize('opts', [
    {'lr_warmup': 2}, {'complementary': True}, {'complementary': True, 'mask_ratio': [20, 40]},
    {'large_mode': 'shared', 'tile_size': 16, 'tile_overlap': 4},
    {'large_mode': 'shared', 'tile_size': 16, 'tile_overlap': 4, 'tile_passes': 3, 'adapt_iterations': 2},
    {'autocast': 'auto', 'channels_last': 'auto'},
    {'by_area': {'pixels': [100, 400], 'iterations': 5}}])
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
def test_by_area_interpolates_steps_in_log_area():
    f = _filler(iterations=10, by_area={'pixels': [100, 10000], 'iterations': 30})
    assert [g.iterations for g in map(f.for_area, (50, 100, 1000, 10000, 10**6))] == [10, 10, 20, 30, 30]
    assert [f.steps_for_area(a) for a in (50, 1000, 10**6)] == [10, 20, 30]
    assert f.for_area(100) is f and f.iterations == 10  # the filler itself is never changed
    assert _filler(by_area=None).for_area(10**6).iterations == 3
    f = _filler(iterations=10, by_area={'pixels': [100, 10000]})  # unset: the base value
    assert f.for_area(10**6).iterations == 10


@pytest.mark.parametrize('size,steps', [(8, 2), (16, 3), (32, 4)])
def test_each_image_and_each_tile_gets_the_steps_of_its_size(size, steps):
    f = _filler(iterations=2, by_area={'pixels': [64, 1024], 'iterations': 4})
    f(_Spy(), torch.rand(1, 3, size, size), torch.Generator().manual_seed(0))
    assert [c['grad'] for c in _Spy.log] == [True] * steps
    _Spy.log.clear()  # tiles of 16 px within a 40-px image: each tile has the steps of 256 pixels
    f = _filler(iterations=2, by_area={'pixels': [64, 1024], 'iterations': 4}, tile_size=16, tile_overlap=4)
    f(_Spy(), torch.rand(1, 3, 40, 40), torch.Generator().manual_seed(0))
    tiles = len(tile_boxes(40, 16, 4)) ** 2
    assert [c['grad'] for c in _Spy.log] == [True] * 3 * tiles
