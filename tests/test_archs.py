"""Architectures: every registered network runs, the MPI authors' checkpoints load strict
and reconstruct hidden pixels, checkpoint errors are helpful and safe."""

import copy
import math
import os
import pickle
import subprocess
import sys

import pytest
import torch
from torch import nn

from _shared_paths import REPO_ROOT, mpi_checkpoint, shared_file
from basicsr_denoise.archs import build_network
from basicsr_denoise.archs.arch_util import pad_to_multiple, unpad
from basicsr_denoise.archs.n2n_unet_arch import N2NUNet
from basicsr_denoise.archs.skip_arch import SkipNet
from basicsr_denoise.checkpoint import load_checkpoint, read_state_dict
from basicsr_denoise.mpi import MaskSampler
from basicsr_denoise.utils.errors import CheckpointError, OptionError
from basicsr_denoise.utils.registry import ARCH_REGISTRY

# Minimal option blocks; small widths keep the CPU run short.
MINIMAL_OPTS = {
    'SkipNet': {'type': 'SkipNet', 'num_in_ch': 6, 'num_channels_down': [8] * 5, 'num_channels_up': [8] * 5,
                'num_channels_skip': [4] * 5},
    'DnCNN': {'type': 'DnCNN', 'num_in_ch': 6, 'num_feat': 8, 'num_layers': 4},
    'DIPResNet': {'type': 'DIPResNet', 'num_in_ch': 6, 'num_feat': 8, 'num_blocks': 2},
    'MaskedNet': {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'singlechannel',
                  'backbone': {'type': 'SkipNet', 'num_channels_down': [8] * 5, 'num_channels_up': [8] * 5,
                               'num_channels_skip': [4] * 5}},
    'N2NUNet': {'type': 'N2NUNet'},
}

# The option blocks that load the four released checkpoints with strict=True.
AUTHOR_CKPTS = {
    'imgnet_30_multchannel_skip.pth': {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel',
                                       'backbone': {'type': 'SkipNet'}},
    'imgnet_80_95_singlechannel_skip.pth': {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'singlechannel',
                                            'backbone': {'type': 'SkipNet'}},
    'imgnet_30_multchannel_dncnn.pth': {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel',
                                        'backbone': {'type': 'DnCNN'}},
    'imgnet_30_multchannel_resnet.pth': {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel',
                                         'backbone': {'type': 'DIPResNet'}},
}


def _first_conv_in_ch(net):
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 3


def _valid_size(net, base=64):
    mult = max(int(getattr(net, 'size_multiple', 1)), 1)
    size = max(base, int(getattr(net, 'min_size', 1)))
    return -(-size // mult) * mult


@pytest.mark.parametrize('name', ARCH_REGISTRY.keys())
def test_every_arch_forward_backward(name):
    torch.manual_seed(0)
    net = build_network(MINIMAL_OPTS.get(name, {'type': name}))
    net.train()
    size = _valid_size(net)
    if name == 'MaskedNet':
        x = torch.rand(2, net.in_ch, size, size)
        mask, _ = MaskSampler((30, 30), net.mask_mode).sample(x.shape, torch.Generator().manual_seed(0))
        y = net(x, mask)
        assert y.shape == x.shape
    else:
        x = torch.rand(2, _first_conv_in_ch(net), size, size)
        y = net(x)
        assert y.shape[0] == 2 and y.shape[-2:] == x.shape[-2:]
    y.square().mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.slow  # a subprocess
def test_import_archs_is_lazy():
    code = ('import sys, basicsr_denoise.archs; '
            'print(sorted(m for m in sys.modules if m.startswith("basicsr_denoise.archs.")))')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '[]'


def test_build_network_accepts_block_or_whole_options():
    a = build_network({'network_g': MINIMAL_OPTS['DnCNN']})
    b = build_network(MINIMAL_OPTS['DnCNN'])
    assert type(a) is type(b)
    with pytest.raises(OptionError, match='network_g'):
        build_network({'type': 'DnCNN', 'num_feet': 3}, source='x.yml')
    with pytest.raises(OptionError, match='NoSuchNet'):
        build_network({'type': 'NoSuchNet'})


def test_masked_net_channels_and_conflicts():
    multi = build_network({'type': 'MaskedNet', 'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 3}})
    single = build_network({
        'type': 'MaskedNet', 'mask_mode': 'singlechannel',
        'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 3}
    })
    assert multi.net.dncnn[0].in_channels == 6 and single.net.dncnn[0].in_channels == 4
    assert multi.mask_channels == 3 and single.mask_channels == 1
    gray = build_network({'type': 'MaskedNet', 'in_ch': 1, 'backbone': {'type': 'DnCNN', 'num_feat': 8}})
    assert gray.net.dncnn[0].in_channels == 2 and gray.net.dncnn[-1].out_channels == 1
    # the input really is cat(x * M, M)
    x = torch.rand(1, 3, 8, 8)
    m = (torch.rand(1, 1, 8, 8) > 0.5).float()
    seen = {}
    single.net.register_forward_pre_hook(lambda mod, args: seen.setdefault('inp', args[0]))
    single(x, m)
    assert torch.equal(seen['inp'], torch.cat([x * m, m], 1))
    with pytest.raises(ValueError, match='mask'):
        multi(x, m)  # multchannel needs a (B, 3, H, W) mask
    with pytest.raises(OptionError, match='num_in_ch'):
        build_network({'type': 'MaskedNet', 'backbone': {'type': 'DnCNN', 'num_in_ch': 4}})
    with pytest.raises(OptionError, match='mask_mode'):
        build_network({'type': 'MaskedNet', 'mask_mode': 'perchannel', 'backbone': {'type': 'DnCNN'}})


def test_skip_net_default_size_and_any_input_size():
    net = SkipNet(num_in_ch=6)
    n_params = sum(p.numel() for p in net.parameters())
    assert 0.74e6 < n_params < 0.76e6
    assert net.min_size == 33 and net.size_multiple == 32
    small = SkipNet(num_in_ch=4, num_channels_down=[4] * 5, num_channels_up=[4] * 5, num_channels_skip=[4] * 5)
    for h, w in [(33, 33), (45, 70), (64, 96)]:
        assert small(torch.rand(1, 4, h, w)).shape == (1, 3, h, w)
    with pytest.raises(ValueError, match='min_size'):
        small(torch.rand(1, 4, 32, 64))
    x, size = pad_to_multiple(torch.rand(1, 4, 20, 9), small.size_multiple, min_size=small.min_size)
    assert x.shape[-2:] == (64, 64)
    assert unpad(small(x), size).shape == (1, 3, 20, 9)


def test_reflection_padding_stays_in_bf16_under_autocast_with_the_same_forward():
    from basicsr_denoise.archs.skip_arch import ReflectionPad2d, with_torch_modules
    x = torch.rand(1, 4, 6, 7).to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ours, torchs = ReflectionPad2d(1)(x), nn.ReflectionPad2d(1)(x)
        assert ReflectionPad2d(0)(x) is x  # a 1x1 conv's zero padding copies nothing
    assert ours.dtype == torch.bfloat16 and torchs.dtype == torch.float32  # autocast pads in float32 ...
    assert torch.equal(ours.float(), torchs)  # ... and padding only moves values
    torch.manual_seed(0)
    net = SkipNet(**{k: v for k, v in MINIMAL_OPTS['SkipNet'].items() if k != 'type'}).train()
    inp = torch.rand(2, 6, 64, 64)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        a = net(inp)
        b = with_torch_modules(net)(inp)
    assert torch.equal(a, b)


def test_channels_last_upsampling_hands_back_a_channels_last_gradient_with_the_same_values(monkeypatch):
    from basicsr_denoise.archs import skip_arch
    with_torch_modules = skip_arch.with_torch_modules
    calls = []
    monkeypatch.setattr(skip_arch, '_channels_last_grad', lambda g: calls.append(1) or
                        g.contiguous(memory_format=torch.channels_last))
    torch.manual_seed(0)
    net = SkipNet(**{k: v for k, v in MINIMAL_OPTS['SkipNet'].items() if k != 'type'}).train()
    net = net.to(memory_format=torch.channels_last)
    inp = torch.rand(2, 6, 64, 64).contiguous(memory_format=torch.channels_last)
    runs = []
    for model in (net, with_torch_modules(copy.deepcopy(net))):
        model.zero_grad()
        out = model(inp)
        (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
        runs.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    assert len(calls) == 5  # one per scale, ours only
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_skip_net_key_layout_matches_dip():
    keys = list(SkipNet(num_in_ch=6).state_dict())
    assert keys[0] == '1.0.1.1.weight'  # DIP numbers Sequential children from 1; reflection pad is child 0
    assert '1.1.7.1.0.1.1.weight' in keys and '9.1.weight' in keys
    assert not any(k.startswith('0.') for k in keys)
    zero = list(SkipNet(num_in_ch=6, pad='zero').state_dict())
    assert zero[0] == '1.0.1.0.weight'


def test_pad_to_multiple_reflects_and_handles_tiny_inputs():
    x = torch.arange(12.).reshape(1, 1, 3, 4)
    y, size = pad_to_multiple(x, 4)
    assert y.shape == (1, 1, 4, 4) and size == (3, 4)
    assert torch.equal(y[0, 0, 3], x[0, 0, 1])  # reflected row
    assert torch.equal(unpad(y, size), x)
    tiny = torch.rand(2, 3, 1, 5)
    y, size = pad_to_multiple(tiny, 32, min_size=64)
    assert y.shape == (2, 3, 64, 64) and torch.equal(unpad(y, size), tiny)
    z, _ = pad_to_multiple(torch.rand(3, 5, 7), 8)  # (C, H, W) also works
    assert z.shape == (3, 8, 8)
    same = torch.rand(1, 1, 32, 32)
    assert pad_to_multiple(same, 32)[0] is same


# ------------------------------------------------------------------------------------------------
# N2N U-Net
# ------------------------------------------------------------------------------------------------


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_n2n_unet_tied_vs_untied():
    tied, untied = N2NUNet(tied=True), N2NUNet(tied=False)
    assert _count(tied) == 700611
    enc = 48 * 48 * 9 + 48
    dec = (144 * 96 * 9 + 96) + 2 * (96 * 96 * 9 + 96)
    assert _count(untied) - _count(tied) == 3 * enc + 2 * dec
    assert len(untied._block2) == 4 and len(untied._block5) == 3
    for h, w in [(32, 32), (64, 96)]:
        x = torch.rand(1, 3, h, w)
        assert tied(x).shape == x.shape and untied(x).shape == x.shape
    with pytest.raises(ValueError, match='multiple of 32'):
        tied(torch.rand(1, 3, 50, 64))
    x = torch.rand(1, 3, 50, 70)
    xp, size = pad_to_multiple(x, tied.size_multiple)
    assert unpad(tied(xp), size).shape == x.shape


def test_n2n_unet_init_and_output_is_linear():
    torch.manual_seed(0)
    net = N2NUNet(init='normal', init_std=0.02)
    w = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert all(m.bias.abs().max() == 0 for m in net.modules() if isinstance(m, nn.Conv2d))
    assert isinstance(net._block6[-1], nn.Conv2d)  # no output activation
    slopes = {m.negative_slope for m in net.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.1}
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    with pytest.raises(OptionError, match='init'):
        N2NUNet(init='xavier')


# ------------------------------------------------------------------------------------------------
# The MPI authors' checkpoints
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('fname', sorted(AUTHOR_CKPTS))
def test_author_checkpoints_load_strict(fname):
    path = mpi_checkpoint(fname)
    net = build_network(AUTHOR_CKPTS[fname])
    result = load_checkpoint(net, str(path), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    sd = read_state_dict(str(path))
    for k, v in net.state_dict().items():
        assert torch.equal(v, sd[k])


def _kodak_crop():
    Image = pytest.importorskip('PIL.Image')
    import numpy as np
    path = shared_file('datasets', 'Kodak24', 'kodim23.png')
    img = np.asarray(Image.open(path).convert('RGB'), dtype=np.float32) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1)[None, :, 64:192, 64:192].contiguous()  # (1, 3, 128, 128), RGB


def _masked_psnr(y, x, hidden):
    mse = ((y - x).square() * hidden).sum() / hidden.sum()
    return 10 * math.log10(1.0 / mse.item())


@pytest.mark.parametrize('fname,percent,min_db', [
    ('imgnet_30_multchannel_skip.pth', 30, 35.0),
    ('imgnet_80_95_singlechannel_skip.pth', 85, 28.0),
    ('imgnet_80_95_singlechannel_skip.pth', 90, 28.0),
    ('imgnet_30_multchannel_dncnn.pth', 30, 35.0),
    ('imgnet_30_multchannel_resnet.pth', 30, 35.0),
])
def test_author_checkpoints_reconstruct_hidden_pixels(fname, percent, min_db):
    """A correctly rebuilt pre-trained network fills hidden pixels far better than a random one.

    BN runs in eval mode (the checkpoint's running statistics): with a single 128x128
    image, batch statistics are too noisy to judge the weights by.
    """
    path = mpi_checkpoint(fname)
    x = _kodak_crop()
    opt = AUTHOR_CKPTS[fname]
    sampler = MaskSampler((percent, percent), opt['mask_mode'])
    mask, p = sampler.sample(x.shape, torch.Generator().manual_seed(0))
    hidden = 1 - sampler.expand(mask, 3)
    assert abs(hidden.mean().item() - p) < 0.02
    scores = {}
    for pretrained in (True, False):
        torch.manual_seed(0)
        net = build_network(opt)
        if pretrained:
            load_checkpoint(net, str(path))
        net.eval()
        with torch.no_grad():
            scores[pretrained] = _masked_psnr(net(x, mask), x, hidden)
    assert scores[True] > min_db, scores
    assert scores[True] > scores[False] + 15, scores


# ------------------------------------------------------------------------------------------------
# Checkpoint errors
# ------------------------------------------------------------------------------------------------


def _tiny_masked(mode, in_ch=3):
    return build_network({
        'type': 'MaskedNet', 'in_ch': in_ch, 'mask_mode': mode,
        'backbone': {'type': 'DnCNN', 'num_feat': 4, 'num_layers': 3}
    })


def test_checkpoint_formats(tmp_path):
    src = _tiny_masked('multchannel')
    sd = src.state_dict()
    for name, obj in [('params', {'params': sd}), ('ema', {'params_ema': sd}), ('raw', sd),
                      ('module', {'params': {'module.' + k: v for k, v in sd.items()}})]:
        path = tmp_path / f'{name}.pth'
        torch.save(obj, path)
        dst = _tiny_masked('multchannel')
        load_checkpoint(dst, str(path))
        assert all(torch.equal(a, b) for a, b in zip(dst.state_dict().values(), sd.values()))
    both = tmp_path / 'both.pth'
    torch.save({'params': sd, 'params_ema': {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}}, both)
    dst = _tiny_masked('multchannel')
    load_checkpoint(dst, str(both), key='params_ema')
    assert torch.equal(dst.net.dncnn[0].bias, sd['net.dncnn.0.bias'] + 1)


def test_wrong_mask_mode_is_named(tmp_path):
    path = tmp_path / 'single.pth'
    torch.save({'params': _tiny_masked('singlechannel').state_dict()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(_tiny_masked('multchannel'), str(path))
    msg = str(info.value)
    assert '\n' not in msg and str(path) in msg
    assert 'expects 6 input channels but the checkpoint has 4' in msg and 'mask_mode singlechannel' in msg
    path = tmp_path / 'multi.pth'
    torch.save({'params': _tiny_masked('multchannel').state_dict()}, path)
    with pytest.raises(CheckpointError, match='try mask_mode multchannel'):
        load_checkpoint(_tiny_masked('singlechannel'), str(path))
    with pytest.raises(CheckpointError, match='in_ch 3 with mask_mode multchannel'):
        load_checkpoint(_tiny_masked('singlechannel', in_ch=1), str(path))


def test_wrong_mask_mode_on_author_checkpoint():
    path = mpi_checkpoint('imgnet_80_95_singlechannel_skip.pth')
    with pytest.raises(CheckpointError, match='expects 6 input channels but the checkpoint has 4: try mask_mode '
                       'singlechannel'):
        load_checkpoint(build_network(AUTHOR_CKPTS['imgnet_30_multchannel_skip.pth']), str(path))


def test_structural_mismatch_messages(tmp_path):
    path = tmp_path / 'a.pth'
    torch.save({'params': _tiny_masked('multchannel').state_dict()}, path)
    deeper = build_network({'type': 'MaskedNet', 'backbone': {'type': 'DnCNN', 'num_feat': 4, 'num_layers': 5}})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(deeper, str(path))
    msg = str(info.value)
    assert 'missing keys (first: net.dncnn.' in msg and 'larger than the checkpoint' in msg
    wider = build_network({'type': 'MaskedNet', 'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 3}})
    with pytest.raises(CheckpointError, match='has 4 channels .* where the network has 8'):
        load_checkpoint(wider, str(path))
    with pytest.raises(CheckpointError, match="load it into MaskedNet"):
        load_checkpoint(build_network({'type': 'DnCNN', 'num_feat': 4, 'num_layers': 3}), str(path))
    skip_path = tmp_path / 'skip.pth'
    small = {'num_channels_down': [4] * 5, 'num_channels_up': [4] * 5, 'num_channels_skip': [4] * 5}
    torch.save({'params': SkipNet(**small).state_dict()}, skip_path)
    with pytest.raises(CheckpointError, match="pad 'reflection'"):
        load_checkpoint(SkipNet(pad='zero', **small), str(skip_path))
    # strict=False tolerates missing keys but never shape mismatches
    with pytest.raises(CheckpointError, match='shape mismatches'):
        load_checkpoint(deeper, str(path), strict=False)
    partial = tmp_path / 'partial.pth'
    sd = _tiny_masked('multchannel').state_dict()
    del sd['net.dncnn.0.bias']
    torch.save({'params': sd}, partial)
    result = load_checkpoint(_tiny_masked('multchannel'), str(partial), strict=False)
    assert result.missing_keys == ['net.dncnn.0.bias']
    with pytest.raises(CheckpointError, match='1 missing keys'):
        load_checkpoint(_tiny_masked('multchannel'), str(partial))


class _Evil:
    """Unpickling this would create a file (``open(path, 'w')``)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'params': {'w': torch.zeros(1)}, 'payload': _Evil(str(marker))}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(nn.Linear(1, 1), str(path))
    msg = str(info.value)
    assert msg.startswith(f'refusing to load {path}: it is not a plain weights file') and '\n' not in msg
    assert not marker.exists()
    # the payload is real: an unsafe load would have run it
    other = tmp_path / 'proof'
    torch.save(_Evil(str(other)), tmp_path / 'proof.pth')
    with open(tmp_path / 'proof.pth', 'rb') as f:
        torch.load(f, weights_only=False)
    assert other.exists()


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
def test_unreadable_and_missing_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint(nn.Linear(1, 1), str(tmp_path / 'nope.pth'))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match=str(bad)):
        load_checkpoint(nn.Linear(1, 1), str(bad))
    odd = tmp_path / 'odd.pth'
    torch.save({'epoch': 3, 'opt': {'lr': 1}}, odd)
    with pytest.raises(CheckpointError, match="no state dict under key 'params'"):
        load_checkpoint(nn.Linear(1, 1), str(odd))
    with open(tmp_path / 'plain.pkl', 'wb') as f:
        pickle.dump([1, 2], f)
    with pytest.raises(CheckpointError):
        load_checkpoint(nn.Linear(1, 1), str(tmp_path / 'plain.pkl'))


def test_shipped_checkpoints_match_their_readme_and_registry_and_load_strict():
    """Each checkpoint in experiments/pretrained_models/ has its sha256 in the README and in the package's
    registry, describes its own network, and loads strict into it."""
    import hashlib
    import re

    from basicsr_denoise.checkpoint import read_checkpoint
    from basicsr_denoise.weights import registry
    folder = os.path.join(os.path.dirname(__file__), os.pardir, 'experiments', 'pretrained_models')
    readme = open(os.path.join(folder, 'README.md')).read()
    listed = dict(re.findall(r'\| `([\w.]+\.pth)` \| `([0-9a-f]{64})` \|', readme))
    files = sorted(f for f in os.listdir(folder) if f.endswith('.pth'))
    shipped = {name: e['sha256'] for name, e in registry().items() if e['sha256']}
    assert files and set(files) == set(listed) == set(shipped)
    for f in files:
        path = os.path.join(folder, f)
        assert hashlib.sha256(open(path, 'rb').read()).hexdigest() == listed[f] == shipped[f], f'{f}: sha256 differs'
        assert os.path.getsize(path) < 10 * 2**20
        sd, meta = read_checkpoint(path)
        assert set(meta) in ({'network_g', 'fill'}, {'network_g', 'score'}), f'{f}: not self-describing'
        load_checkpoint(build_network(meta['network_g']), path, strict=True, network_g=meta['network_g'])
