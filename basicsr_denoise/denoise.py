"""Denoise your own photos, with no YAML and no ground truth.

Usage::

    python -m basicsr_denoise.denoise INPUT... -o OUTDIR [--preset gauss|fast|real|real-fast|sidd|sidd-fast]
                                      [--weights PATH] [--device auto|cpu|cuda|mps] [--gt DIR]
    python -m basicsr_denoise.denoise INPUT... -o OUTDIR --method n2s [--sigma S] [--weights PATH]

``--method mpi`` (default) denoises each image zero-shot (MPI). ``--method n2s`` applies a trained
Noise2Score score network and Tweedie's formula for Gaussian noise (one forward pass per image):
at ``--sigma S`` (0-255 scale) when the level is known, otherwise it estimates the level of every
image (the authors' TV criterion, refined by golden-section search) and reports it as ``sigma_hat``.
The default N2S checkpoint is the project's ``N2S_gauss25_color_ours.pth`` (trained on colour
images at sigma 25; a gray image needs a gray checkpoint, see options/train/Noise2Score/).

INPUT is one or more image files or folders (PNG, JPEG, TIFF, BMP, 8/16-bit, gray/RGB/RGBA,
or float ``.npy``). For each image it writes ``OUTDIR/<name>_denoised.png`` (16-bit PNG for
16-bit inputs, gray for gray inputs), ``OUTDIR/<name>_compare.png`` (noisy | denoised, plus
clean when ``--gt`` is given) and one line to the console; ``OUTDIR/metrics.json`` holds the
per-image seconds (and PSNR/SSIM against ``--gt``).

Presets (MPI, Ma et al., NeurIPS 2024; see METHODS and options/test/MPI/):

=========  ==========================  ========  ======  =====  =======
preset     weights                     hidden %  steps   beta   shuffle
=========  ==========================  ========  ======  =====  =======
gauss      synthetic (30 %, per chan.) 30        1000    0.99   1
fast       synthetic                   30        200     0.90   1
real       real (80-95 %, shared)      85        1000    0.99   1
real-fast  real                        85        200     0.90   1
sidd       real                        90        800     0.99   2
sidd-fast  real                        90        200     0.90   2
=========  ==========================  ========  ======  =====  =======
"""

import argparse
import json
import os
import os.path as osp
import sys
import time

import numpy as np
import torch

from basicsr_denoise.utils.errors import BasicSRDenoiseError, CheckpointError, DataError, exit_on_user_error

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))
WEIGHTS = {'syn': 'MPI_syn_ours.pth', 'real': 'MPI_real_ours.pth', 'n2s': 'N2S_gauss25_color_ours.pth'}
RECIPES = {'syn': 'MPI/pretrain_MPI_syn_small.yml', 'real': 'MPI/pretrain_MPI_real_imagenet.yml',
           'n2s': 'Noise2Score/train_N2S_gauss25.yml'}
PRESETS = {
    'gauss': dict(weights='syn', mask_mode='multchannel', ratio=30, iterations=1000, beta=0.99, shuffle=1),
    'fast': dict(weights='syn', mask_mode='multchannel', ratio=30, iterations=200, beta=0.9, shuffle=1),
    'real': dict(weights='real', mask_mode='singlechannel', ratio=85, iterations=1000, beta=0.99, shuffle=1),
    'real-fast': dict(weights='real', mask_mode='singlechannel', ratio=85, iterations=200, beta=0.9, shuffle=1),
    'sidd': dict(weights='real', mask_mode='singlechannel', ratio=90, iterations=800, beta=0.99, shuffle=2),
    'sidd-fast': dict(weights='real', mask_mode='singlechannel', ratio=90, iterations=200, beta=0.9, shuffle=2),
}


def weights_dirs():
    """Folders searched for the default checkpoints: ``$BASICSR_DENOISE_WEIGHTS``, then the repo's."""
    dirs = [os.environ.get('BASICSR_DENOISE_WEIGHTS'), osp.join(REPO_ROOT, 'experiments', 'pretrained_models')]
    return [d for d in dirs if d]


def default_weights(kind):
    """Path of the project's default checkpoint of ``kind`` (``'syn'``, ``'real'`` or ``'n2s'``).

    Raises:
        CheckpointError: with instructions when it is not there.
    """
    name = WEIGHTS[kind]
    for d in weights_dirs():
        if osp.isfile(osp.join(d, name)):
            return osp.join(d, name)
    hint = ' (e.g. the MPI authors\' released weights, see README)' if kind != 'n2s' else ''
    raise CheckpointError(
        f'no default {kind} checkpoint ({name}) in {" or ".join(weights_dirs())}: pass --weights PATH{hint}, '
        f'or train one with python basicsr_denoise/train.py -opt options/train/{RECIPES[kind]}')


def collect_inputs(inputs, recursive=False):
    """Image files named by ``inputs`` (files, or folders scanned for images), in order, without duplicates."""
    from basicsr_denoise.utils.img_util import is_image_file, scandir
    files = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(osp.join(item, p) for p in scandir(item, recursive=recursive) if is_image_file(p))
            if not found:
                raise DataError(f'no images found in folder {item}')
            files += found
        elif osp.isfile(item):
            files.append(item)
        else:
            raise DataError(f'input not found: {item}')
    seen = set()
    return [f for f in files if not (f in seen or seen.add(f))]


def read_input(path):
    """Read ``path`` as float32 ``(H, W, C)`` in [0, 1] (unclipped for float .npy) and its bit depth."""
    from basicsr_denoise.utils.img_util import imread
    raw = imread(path, float32=False)
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535.0, 16
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0, 8
    return raw.astype(np.float32), 8  # float .npy: imread already refused NaN/Inf


class MPIDenoiser:
    """Zero-shot MPI filling with a preset's masked network (weights) and filler."""

    def __init__(self, preset='fast', weights=None, device='auto', iterations=None, beta=None, seed=0):
        from basicsr_denoise.archs import build_network
        from basicsr_denoise.archs.arch_util import load_checkpoint
        from basicsr_denoise.models.iterative_fill_model import build_filler
        from basicsr_denoise.utils.dist import default_device
        if preset not in PRESETS:
            raise DataError(f"unknown preset '{preset}' (known: {', '.join(sorted(PRESETS))})")
        p = PRESETS[preset]
        self.device = default_device('auto') if device == 'auto' else torch.device(device)
        net = build_network({'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': p['mask_mode'],
                             'backbone': {'type': 'SkipNet'}})
        self.weights = weights or default_weights(p['weights'])
        load_checkpoint(net, self.weights, key='params', strict=True)
        fill = {'iterations': iterations or p['iterations'], 'beta': beta if beta is not None else p['beta'],
                'mask_ratio': [p['ratio'], p['ratio']], 'shuffle': p['shuffle'], 'tile_size': 1024,
                'tile_overlap': 64}
        self.net, self.filler = net.to(self.device), build_filler(fill, p['mask_mode'])
        self.seed, self.preset = seed, preset
        self.summary = (f'MPI preset {preset} ({self.filler.iterations} steps, beta {self.filler.beta}), '
                        f'weights {self.weights}, device {self.device}')

    def __call__(self, x, path, desc):
        from basicsr_denoise.models.iterative_fill_model import image_seed
        name = osp.splitext(osp.basename(path))[0]
        gen = torch.Generator(device=self.device).manual_seed(image_seed(self.seed, name))
        return self.filler(self.net, x, gen, desc=desc), {}


class N2SDenoiser:
    """Noise2Score for Gaussian noise: one score evaluation and Tweedie's step per image.

    Args:
        weights (str | None): An ``N2NUNet`` checkpoint (tied or untied, gray or colour; read from the
            file). Default: the project's ``N2S_gauss25_color_ours.pth``.
        device (str): ``auto``, ``cpu``, ``cuda`` or ``mps``.
        sigma (float | None): Known noise level on the 0-255 scale; None estimates it per image
            (``tv_golden``: the authors' TV grid refined by golden-section search).
        tile (int | None): Score the image in tiles of this side (blended overlaps, bounded memory);
            0 never tiles; None tiles images above 2 MP (:func:`~basicsr_denoise.archs.arch_util.tiled_forward`).
    """

    def __init__(self, weights=None, device='auto', sigma=None, tile=None):
        from basicsr_denoise.archs.arch_util import load_checkpoint, read_state_dict
        from basicsr_denoise.archs.n2n_unet_arch import N2NUNet
        from basicsr_denoise.noise import build_noise
        from basicsr_denoise.utils.dist import default_device
        self.device = default_device('auto') if device == 'auto' else torch.device(device)
        self.weights = weights or default_weights('n2s')
        sd = read_state_dict(self.weights, key='params')
        first = sd.get('_block1.0.weight')
        if first is None or first.dim() != 4:
            raise CheckpointError(f'{self.weights}: not a Noise2Score N2NUNet checkpoint (no _block1.0.weight)')
        self.channels = int(first.shape[1])
        net = N2NUNet(num_in_ch=self.channels, num_out_ch=self.channels, tied='_block2.0.weight' in sd)
        load_checkpoint(net, self.weights, key='params', strict=True, state_dict=sd)
        self.net = net.to(self.device).eval()
        self.noise = build_noise({'type': 'Gaussian', 'sigma': sigma if sigma is not None else 25}, key='--sigma')
        self.blind = sigma is None
        self.tile = tile
        level = 'estimated per image' if self.blind else f'sigma {sigma:g}'
        self.summary = f'Noise2Score Gaussian, {level}, weights {self.weights}, device {self.device}'

    @torch.no_grad()
    def score(self, inp):
        from basicsr_denoise.archs.arch_util import tiled_forward
        return tiled_forward(self.net, inp, tile=self.tile)

    @torch.no_grad()
    def __call__(self, x, path, desc):
        from basicsr_denoise.noise.blind import estimate_level
        if x.shape[1] != self.channels:
            raise DataError(f'{path}: {x.shape[1]}-channel image, but the Noise2Score checkpoint {self.weights} '
                            f'expects {self.channels} channel(s); train one for it '
                            f'(options/train/Noise2Score/) and pass --weights')
        if self.blind:
            level, xhat = estimate_level(self.noise, x, self.score, method='tv_golden')
            return xhat.clamp(0, 1), {'sigma_hat': float(level[0])}
        return self.noise.tweedie(x, self.score(x)).clamp(0, 1), {}


def build_denoiser(method='mpi', preset='fast', weights=None, device='auto', iterations=None, beta=None, seed=0,
                   sigma=None, tile=None):
    """The denoiser of ``method`` (``'mpi'`` or ``'n2s'``): ``denoiser(x, path, desc) -> (out, extra)``.

    ``x`` is ``(1, C, H, W)`` on the denoiser's ``device``; ``extra`` holds per-image records such as
    ``sigma_hat``; ``summary`` describes the setup in one line.
    """
    if method == 'mpi':
        if sigma is not None:
            raise DataError('--sigma applies to --method n2s only (MPI needs no noise level)')
        if tile is not None:
            raise DataError('--tile applies to --method n2s only (MPI presets tile by their own rule)')
        return MPIDenoiser(preset, weights, device, iterations, beta, seed)
    if method == 'n2s':
        if tile is not None and tile < 0:
            raise DataError(f'--tile: must be >= 0 (0: never tile), got {tile}')
        return N2SDenoiser(weights, device, sigma, tile)
    raise DataError(f"unknown method '{method}' (known: mpi, n2s)")


def denoise_files(files, outdir, preset='fast', weights=None, device='auto', gt_dir=None, seed=0, iterations=None,
                  beta=None, method='mpi', sigma=None, *, tile=None):
    """Denoise ``files`` into ``outdir``; returns the metrics dict written to ``metrics.json``."""
    from basicsr_denoise.metrics.psnr_ssim import calculate_psnr, calculate_ssim
    from basicsr_denoise.utils.img_util import imread, imwrite, make_comparison
    denoiser = build_denoiser(method, preset, weights, device, iterations, beta, seed, sigma, tile)
    dev = denoiser.device
    os.makedirs(outdir, exist_ok=True)
    print(f'denoise: {len(files)} image(s), {denoiser.summary}', flush=True)
    records, failed = [], []
    for i, path in enumerate(files):
        name = osp.splitext(osp.basename(path))[0]
        try:
            img, depth = read_input(path)
            gt = None
            if gt_dir:
                cand = [osp.join(gt_dir, name + ext) for ext in ('.png', '.npy', '.tif', '.bmp', '.jpg', '.JPG')]
                gt_path = next((c for c in cand if osp.isfile(c)), None)
                gt = imread(gt_path) if gt_path else None
            t0 = time.perf_counter()
            x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(dev)
            out, extra = denoiser(x, path, desc=f'[{i + 1}/{len(files)}] {name}')
            if dev.type == 'cuda':
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
        except BasicSRDenoiseError as exc:
            print(f'error: {exc}', file=sys.stderr, flush=True)
            failed.append(path)
            continue
        out = out[0].detach().cpu().numpy().transpose(1, 2, 0)
        imwrite(out, osp.join(outdir, f'{name}_denoised.png'), bit_depth=depth)
        rec = {'name': name, 'input': path, 'height': img.shape[0], 'width': img.shape[1], 'channels': img.shape[2],
               'bit_depth': depth, 'seconds': seconds, **extra}
        panels, labels = [img, out], ['noisy', 'denoised']
        line = f'{name}: {img.shape[1]}x{img.shape[0]}x{img.shape[2]} {depth}-bit, {seconds:.1f} s'
        if 'sigma_hat' in extra:
            line += f", sigma_hat {extra['sigma_hat']:.1f}"
        if gt is not None and gt.shape == img.shape:
            rec['psnr'] = calculate_psnr(out, gt, float_mode=True)
            rec['ssim'] = calculate_ssim(out, gt, float_mode=True, window='uniform')
            rec['psnr_noisy'] = calculate_psnr(img, gt, float_mode=True)
            labels[0] = f"noisy {rec['psnr_noisy']:.2f} dB"
            labels[1] = f"denoised {rec['psnr']:.2f} dB"
            panels.append(gt)
            labels.append('clean')
            line += f", PSNR {rec['psnr_noisy']:.2f} -> {rec['psnr']:.2f} dB, SSIM {rec['ssim']:.4f}"
        imwrite(make_comparison(panels, labels), osp.join(outdir, f'{name}_compare.png'))
        records.append(rec)
        print(line, flush=True)
    mean = {k: float(np.mean([r[k] for r in records if k in r])) for k in ('psnr', 'ssim', 'seconds', 'sigma_hat')
            if any(k in r for r in records)}
    result = {'method': method, 'preset': preset if method == 'mpi' else None, 'sigma': sigma,
              'weights': denoiser.weights, 'images': records, 'mean': mean, 'count': len(records), 'failed': failed}
    with open(osp.join(outdir, 'metrics.json'), 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=2)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m basicsr_denoise.denoise',
                                     description='Denoise your own images: MPI zero-shot (default) or Noise2Score.')
    parser.add_argument('inputs', nargs='+', help='Image files and/or folders.')
    parser.add_argument('-o', '--output', required=True, help='Output folder.')
    parser.add_argument('--method', default='mpi', choices=['mpi', 'n2s'],
                        help='mpi: zero-shot masked filling (default); n2s: Noise2Score, Gaussian noise.')
    parser.add_argument('--preset', default='fast', choices=sorted(PRESETS), help='MPI preset. Default: fast.')
    parser.add_argument('--sigma', type=float, default=None,
                        help='n2s: the known Gaussian sigma (0-255); default: estimated per image.')
    parser.add_argument('--weights', default=None, help="Checkpoint; default: the project's own.")
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda', 'mps'])
    parser.add_argument('--gt', default=None, help='Optional folder of clean images (same names) for PSNR/SSIM.')
    parser.add_argument('--recursive', action='store_true', help='Search folders recursively.')
    parser.add_argument('--iterations', type=int, default=None, help="Override the preset's number of steps.")
    parser.add_argument('--beta', type=float, default=None, help="Override the preset's ensemble weight.")
    parser.add_argument('--seed', type=int, default=0, help='Mask seed (results repeat exactly for a seed).')
    parser.add_argument('--tile', type=int, default=None,
                        help='n2s: score in tiles of this side (0: never; default: 512-px tiles above 2 MP).')
    args = parser.parse_args(argv)
    files = exit_on_user_error(collect_inputs, args.inputs, args.recursive)
    res = exit_on_user_error(denoise_files, files, args.output, args.preset, args.weights, args.device, args.gt,
                             args.seed, args.iterations, args.beta, args.method, args.sigma, tile=args.tile)
    summary = f"done: {res['count']} image(s) in {args.output}"
    if 'psnr' in res['mean']:
        summary += f", mean PSNR {res['mean']['psnr']:.2f} dB"
    print(summary + (f", {len(res['failed'])} failed" if res['failed'] else ''), flush=True)
    if res['failed']:
        sys.exit(1)


if __name__ == '__main__':
    main()
