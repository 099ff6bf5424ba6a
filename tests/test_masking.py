"""MPI keep-masks: hidden ratio, channel sharing, ratio ranges, patches, reproducibility."""

import pytest
import torch

from basicsr_denoise.mpi import MaskSampler, expand_mask
from basicsr_denoise.utils.errors import OptionError


def _gen(seed=0, device='cpu'):
    return torch.Generator(device=device).manual_seed(seed)


def test_multchannel_hidden_fraction_and_format():
    mask, p = MaskSampler((30, 30), 'multchannel').sample((4, 3, 64, 64), _gen())
    assert p == pytest.approx(0.30)
    assert mask.shape == (4, 3, 64, 64) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert abs((1 - mask).mean().item() - 0.30) < 0.01  # 49k draws: std 0.002
    # channels are independent
    agree = (mask[:, 0] == mask[:, 1]).float().mean().item()
    assert abs(agree - (0.7**2 + 0.3**2)) < 0.02


def test_golden_mask_matches_hand_computation():
    mask, p = MaskSampler(30).sample((1, 3, 5, 7), _gen(123))
    u = torch.rand((1, 3, 5, 7), generator=_gen(123))
    assert torch.equal(mask, (u >= 0.30).float())  # hidden where u < p


def test_singlechannel_shares_one_mask():
    sampler = MaskSampler((90, 90), 'singlechannel')
    mask, p = sampler.sample((2, 3, 64, 64), _gen())
    assert mask.shape == (2, 1, 64, 64)
    assert abs((1 - mask).mean().item() - 0.90) < 0.01
    full = sampler.expand(mask, 3)
    assert full.shape == (2, 3, 64, 64)
    assert torch.equal(full[:, 0], full[:, 1]) and torch.equal(full[:, 1], full[:, 2])
    assert expand_mask(full, 3) is full
    with pytest.raises(ValueError):
        expand_mask(torch.ones(1, 2, 4, 4), 3)


def test_ratio_range_draws_vary_and_stay_in_range():
    sampler = MaskSampler([80, 95], 'singlechannel')
    gen = _gen(7)
    ps = []
    for _ in range(300):
        mask, p = sampler.sample((1, 3, 32, 32), gen)
        ps.append(p)
    percents = {round(p * 100) for p in ps}
    assert percents <= set(range(80, 96))
    assert {80, 95} <= percents and len(percents) >= 14  # every integer, ends included
    assert all(abs(p * 100 - round(p * 100)) < 1e-9 for p in ps)
    # the mask follows the drawn p
    for _ in range(5):
        mask, p = sampler.sample((1, 3, 128, 128), gen)
        assert abs((1 - mask).mean().item() - p) < 0.02


def test_reproducible_and_stateless():
    sampler = MaskSampler((30, 40))
    a, pa = sampler.sample((2, 3, 16, 16), _gen(5))
    sampler.sample((2, 3, 16, 16), _gen(99))  # no hidden state carried between calls
    b, pb = sampler.sample((2, 3, 16, 16), _gen(5))
    assert torch.equal(a, b) and pa == pb
    c, _ = sampler.sample((2, 3, 16, 16), _gen(6))
    assert not torch.equal(a, c)
    gen = _gen(5)
    first, _ = sampler.sample((2, 3, 16, 16), gen)
    second, _ = sampler.sample((2, 3, 16, 16), gen)
    assert not torch.equal(first, second)


def test_device_follows_generator():
    mask, _ = MaskSampler(30).sample((1, 3, 8, 8), _gen())
    assert mask.device.type == 'cpu'
    moved, _ = MaskSampler(30).sample((1, 3, 8, 8), _gen(), device='meta')
    assert moved.device.type == 'meta'
    if torch.cuda.is_available():
        mask, _ = MaskSampler([20, 40]).sample((1, 3, 8, 8), _gen(device='cuda'))
        assert mask.device.type == 'cuda'


def test_patch_masks():
    sampler = MaskSampler((50, 50), 'multchannel', patch_size=4)
    mask, _ = sampler.sample((2, 3, 30, 42), _gen(3))
    assert mask.shape == (2, 3, 30, 42)
    full = torch.nn.functional.pad(mask, (0, 2, 0, 2), mode='replicate')  # 32 x 44
    blocks = full.unfold(2, 4, 4).unfold(3, 4, 4)  # (2, 3, 8, 11, 4, 4)
    assert torch.equal(blocks.amax((-1, -2)), blocks.amin((-1, -2)))  # constant on 4x4 squares
    big, _ = sampler.sample((4, 3, 128, 128), _gen(4))
    assert abs((1 - big).mean().item() - 0.5) < 0.03


def test_extreme_ratios():
    assert MaskSampler(0).sample((1, 3, 8, 8), _gen())[0].min() == 1
    assert MaskSampler(100).sample((1, 3, 8, 8), _gen())[0].max() == 0


@pytest.mark.parametrize('kwargs,match', [
    ({'ratio': 0.3}, 'not fractions'),
    ({'ratio': (95, 80)}, 'min <= max'),
    ({'ratio': (30, 130)}, 'min <= max'),
    ({'ratio': (1, 2, 3)}, 'pair'),
    ({'mode': 'perchannel'}, 'mask mode'),
    ({'patch_size': 0}, 'patch_size'),
])
def test_invalid_options(kwargs, match):
    with pytest.raises(OptionError, match=match):
        MaskSampler(**kwargs)
