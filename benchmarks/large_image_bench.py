"""A 12-megapixel photo through the ``denoise`` command: wall time, peak memory, PSNR, and the PSNR of the
fresh-weights-per-tile path on a 1024x1024 crop of it (issue #10).

The photo is a mosaic of the images of ``--images`` (Kodak24: 768x512, portrait ones turned), tiled row by
row and cut to ``--size``, with Gaussian noise of ``--sigma`` (0-255 scale, ``numpy.random.default_rng(--seed)``)
added and clipped, saved as a 16-bit PNG as a camera or editor would hand it over. Then:

1. ``basicsr-denoise photo.png -o OUT/photo --preset P --gt OUT/gt`` runs in a child process, the command a
   user types; its wall time and peak resident memory (``getrusage`` of the child) are recorded.
2. The same 1024x1024 centre crop of the noisy photo is filled the way every tile of the authors' path is
   filled (``large_mode: tiles``, so fresh weights and the preset's full schedule on the crop), in this
   process, and both results are scored against the clean crop.

Example::

    python benchmarks/large_image_bench.py --images datasets/Kodak24 --out results/large_image --preset quick

Writes ``OUT/large_image.json`` (atomically) and prints it; a finished step is kept on a rerun (``--force``
redoes everything).
"""

import argparse
import glob
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

import numpy as np

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.cli import read_input  # noqa: E402
from basicsr_denoise.utils.atomic import atomic_write_json  # noqa: E402
from basicsr_denoise.utils.img_util import imwrite  # noqa: E402
from benchmarks._common import psnr  # noqa: E402
from basicsr_denoise.utils.img_util import imread  # noqa: E402


def build_mosaic(folder, width, height):
    """The images of ``folder`` (sorted, landscape-turned) tiled row by row and cut to ``height x width``."""
    files = sorted(f for f in glob.glob(osp.join(folder, '*')) if osp.splitext(f)[1].lower() in ('.png', '.jpg',
                                                                                                   '.jpeg', '.bmp',
                                                                                                   '.tif', '.tiff'))
    if not files:
        raise SystemExit(f'error: --images: no images in {folder}')
    tiles = [imread(f) for f in files]
    tiles = [np.rot90(t) if t.shape[0] > t.shape[1] else t for t in tiles]
    th, tw = min(t.shape[0] for t in tiles), min(t.shape[1] for t in tiles)
    rows, cols = -(-height // th), -(-width // tw)
    mosaic = np.zeros((rows * th, cols * tw, 3), np.float32)
    for k in range(rows * cols):
        t = tiles[k % len(tiles)][:th, :tw]
        r, c = divmod(k, cols)
        mosaic[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = t[..., :3] if t.ndim == 3 else t[..., None]
    return np.ascontiguousarray(mosaic[:height, :width])


def centre_box(h, w, size):
    top, left = (h - size) // 2, (w - size) // 2
    return slice(top, top + size), slice(left, left + size)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', required=True, help='Folder of clean images for the mosaic (e.g. Kodak24).')
    parser.add_argument('--out', default='results/large_image', help='Output folder.')
    parser.add_argument('--size', default='4000x3000', help='WIDTHxHEIGHT of the photo. Default: 4000x3000.')
    parser.add_argument('--sigma', type=float, default=25.0, help='Gaussian noise level (0-255). Default: 25.')
    parser.add_argument('--seed', type=int, default=0, help='Noise seed. Default: 0.')
    parser.add_argument('--preset', default=None, help="MPI preset (default: the denoise command's default).")
    parser.add_argument('--weights', default=None, help="Weights (default: the preset's).")
    parser.add_argument('--iterations', type=int, default=None, help="Override the preset's steps (quick checks).")
    parser.add_argument('--crop', type=int, default=1024, help='Side of the per-tile comparison crop. Default: 1024.')
    parser.add_argument('--force', action='store_true', help='Redo the finished steps.')
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        raise SystemExit(f'error: --size: expected WIDTHxHEIGHT (e.g. 4000x3000), got {args.size!r}') from None
    if args.crop > min(width, height):
        raise SystemExit(f'error: --crop: {args.crop} is larger than the photo ({args.size})')
    os.makedirs(args.out, exist_ok=True)
    report_path = osp.join(args.out, 'large_image.json')
    keys = ('images', 'size', 'sigma', 'seed', 'preset', 'weights', 'iterations', 'crop')
    params = {k: getattr(args, k) for k in keys}
    report = {} if args.force or not osp.isfile(report_path) else json.load(open(report_path))
    if report and report.get('params') != params:  # never mix the results of two set-ups
        raise SystemExit(f'error: {report_path} holds a run with other arguments ({report.get("params")}); '
                         'pass --force to redo it or use another --out')
    report['params'] = params
    gt_dir, noisy_path = osp.join(args.out, 'gt'), osp.join(args.out, 'photo.png')
    gt_path = osp.join(gt_dir, 'photo.png')
    if args.force or not (osp.isfile(gt_path) and osp.isfile(noisy_path)):
        gt = build_mosaic(args.images, width, height)
        noise = np.random.default_rng(args.seed).standard_normal(gt.shape).astype(np.float32) * (args.sigma / 255.)
        os.makedirs(gt_dir, exist_ok=True)
        imwrite(gt, gt_path, bit_depth=16)
        imwrite(np.clip(gt + noise, 0, 1), noisy_path, bit_depth=16)
    gt = read_input(gt_path)[0]
    noisy = read_input(noisy_path)[0]
    report['noisy_psnr'] = psnr(noisy, gt)

    from basicsr_denoise.presets import DEFAULT_PRESET, load_preset
    preset = args.preset or DEFAULT_PRESET
    rows, cols = centre_box(height, width, args.crop)
    photo_dir = osp.join(args.out, 'photo')
    if 'photo' not in report:  # 1. the command a user types, in a child process
        cmd = [sys.executable, '-m', 'basicsr_denoise.cli', noisy_path, '-o', photo_dir, '--gt', gt_dir]
        cmd += ['--preset', args.preset] if args.preset else []
        cmd += ['--weights', args.weights] if args.weights else []
        cmd += ['--iterations', str(args.iterations)] if args.iterations else []
        start = time.time()
        subprocess.run(cmd, check=True)
        seconds = time.time() - start
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9  # Linux: kilobytes
        out = read_input(osp.join(photo_dir, 'photo_denoised.png'))[0]
        report['photo'] = {'command': ' '.join(cmd[1:]), 'seconds': seconds, 'minutes': seconds / 60,
                           'peak_rss_gb': peak_gb, 'psnr': psnr(out, gt),
                           'crop_psnr': psnr(out[rows, cols], gt[rows, cols])}
        atomic_write_json(report, report_path)
    if 'crop_per_tile' not in report:  # 2. fresh weights and the full schedule on the crop, as each tile of 'tiles'
        from basicsr_denoise.inference import MPIDenoiser
        fill = {'large_mode': 'tiles', 'tile_size': args.crop, 'progress': True}
        fill.update({'iterations': args.iterations} if args.iterations else {})
        den = MPIDenoiser.from_pretrained(preset, args.weights, fill=fill, device='cpu')
        crop = np.ascontiguousarray(noisy[rows, cols])
        start = time.time()
        out = den.denoise_image(crop, name='photo_crop')
        report['crop_per_tile'] = {'fill': {**load_preset(preset).get('fill', {}), **fill},
                                   'seconds': time.time() - start, 'psnr': psnr(out, gt[rows, cols])}
        atomic_write_json(report, report_path)
    report['crop_gain_db'] = report['photo']['crop_psnr'] - report['crop_per_tile']['psnr']
    atomic_write_json(report, report_path)
    print(json.dumps(report, indent=2))
    return report


if __name__ == '__main__':
    main()
