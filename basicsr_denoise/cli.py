"""Denoise your own photos, with no YAML and no ground truth: the ``basicsr-denoise`` command.

Usage::

    basicsr-denoise INPUT... -o OUTDIR [--preset quick|gauss|fast|real|real-fast|sidd|sidd-fast]
                    [--weights PATH] [--network YAML] [--device auto|cpu|cuda|mps] [--gt DIR] [--skip-existing]
                    [--format png|jpg|tif] [--quality N]
    basicsr-denoise INPUT... -o OUTDIR --method n2s [--noise gaussian|poisson|gamma] [--sigma S | --eta E | --k K]
                    [--weights PATH] [--tile N]
    basicsr-denoise weights list                       # every known checkpoint (ours and the model zoo's)
    basicsr-denoise weights fetch NAME...              # download zoo checkpoints (resumed, sha256-checked)
    python -m basicsr_denoise ...                      # the same command
    torchrun --nproc_per_node=N -m basicsr_denoise ... # the images split across N processes

``--method mpi`` (default) denoises each image zero-shot (MPI; presets in :mod:`basicsr_denoise.presets`).
``--method n2s`` applies a trained Noise2Score score network and Tweedie's formula of ``--noise`` (one
forward pass per image): at ``--sigma S`` (0-255), ``--eta E`` or ``--k K`` when the level is known, otherwise
it estimates the level of every image (the authors' TV criterion, refined by golden-section search) and
reports it as ``sigma_hat``, ``eta_hat`` or ``k_hat``. Without ``--weights`` the shipped model is chosen per
image (gray or colour, the family, the nearest training level) and named in ``metrics.json``. Both run through
:mod:`basicsr_denoise.inference`.

INPUT is one or more image files or folders (PNG, JPEG, TIFF, BMP, 8/16-bit, gray/RGB/RGBA, HEIC/HEIF
with the ``heif`` extra, or float ``.npy``), read upright (the EXIF orientation applied). For each image it
writes ``OUTDIR/<name>_denoised.<ext>``, ``OUTDIR/<name>_compare.png`` (noisy | denoised, plus clean with
``--gt``) and one line to the console. ``<ext>`` is ``--format``'s (png, jpg, tif), by default the input's
(``.png`` for BMP, HEIC and ``.npy``); JPEGs are written at ``--quality`` (default 95). 16-bit inputs give
16-bit PNG/TIFF (a JPEG is 8-bit, and the command says so once), gray inputs gray outputs; the input's EXIF
(orientation reset to 1) and ICC profile are kept where the format holds them
(:mod:`basicsr_denoise.utils.photo_io`). ``<name>`` is the file stem; inputs that share a stem get their folder
(then their extension) prepended, so no output overwrites another. ``OUTDIR/metrics.json`` (per-image seconds, and
PSNR/SSIM against ``--gt``) is rewritten after every image, so a killed run loses nothing:
``--skip-existing`` then denoises only the images without an output and keeps the others' records.
"""

import argparse
import glob
import json
import os
import os.path as osp
import sys
import tempfile
import time
from collections import Counter

if __package__ in (None, ''):  # run as a script (torchrun basicsr_denoise/cli.py): import the package by name
    sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from basicsr_denoise.presets import DEFAULT_PRESET, MPI_PRESETS  # noqa: E402
from basicsr_denoise.utils.atomic import atomic_write_json  # noqa: E402
from basicsr_denoise.utils.errors import BasicSRDenoiseError, DataError, OptionError, exit_on_user_error  # noqa: E402

METRICS = 'metrics.json'


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
    return [f for f in files if not (osp.abspath(f) in seen or seen.add(osp.abspath(f)))]


def output_names(files):
    """One output name per file: its stem, made unique by its folder's name, then its extension, then a number."""
    stems = [osp.splitext(osp.basename(f))[0] for f in files]
    folders = [osp.basename(osp.dirname(osp.abspath(f))) for f in files]
    exts = [osp.splitext(f)[1].lstrip('.').lower() for f in files]
    names = list(stems)
    for widen in (lambda i: f'{folders[i]}_{stems[i]}', lambda i: f'{folders[i]}_{stems[i]}_{exts[i]}'):
        counts = Counter(names)
        names = [widen(i) if counts[n] > 1 else n for i, n in enumerate(names)]
    counts, seen = Counter(names), Counter()
    for i, n in enumerate(names):
        if counts[n] > 1:
            seen[n] += 1
            names[i] = f'{n}_{seen[n]}'
    return names


def prepare_outdir(outdir):
    """Create ``outdir`` and check that files can be written there; a one-line DataError names it otherwise."""
    try:
        os.makedirs(outdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=outdir, prefix='.write_test_'):
            pass
    except OSError as exc:
        raise DataError(f'cannot write to output folder {outdir}: {exc.strerror or exc}') from None


def read_photo_input(path):
    """Read ``path`` upright as float32 ``(H, W, C)`` in [0, 1] (unclipped for float .npy), its bit depth and its
    :class:`~basicsr_denoise.utils.photo_io.PhotoInfo` (EXIF, ICC profile, warnings)."""
    from basicsr_denoise.utils.photo_io import read_photo
    raw, info = read_photo(path)
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535.0, 16, info
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0, 8, info
    return raw.astype(np.float32), 8, info  # float .npy: read_photo already refused NaN/Inf


def read_input(path):
    """Read ``path`` as float32 ``(H, W, C)`` in [0, 1] (unclipped for float .npy) and its bit depth."""
    return read_photo_input(path)[:2]


def output_path(outdir, name, path, fmt=None):
    """The denoised file of input ``path``: ``OUTDIR/<name>_denoised<ext>`` (see ``--format``)."""
    from basicsr_denoise.utils.photo_io import output_extension
    return osp.join(outdir, f'{name}_denoised{output_extension(path, fmt)}')


def _find_gt(gt_dir, stem):
    from basicsr_denoise.utils.img_util import imread
    cand = [osp.join(gt_dir, stem + ext) for ext in ('.png', '.npy', '.tif', '.bmp', '.jpg', '.JPG')]
    path = next((c for c in cand if osp.isfile(c)), None)
    return imread(path) if path else None


def denoise_one(denoiser, path, name, outdir, gt_dir=None, label=None, fmt=None, quality=None, notes=None,
                image=None):
    """Denoise one file into ``outdir``; returns its metrics record and its console line.

    ``fmt`` and ``quality`` are ``--format`` and ``--quality``. Warnings (corrupt EXIF, metadata not kept) are
    printed as ``warning: ...`` lines; the bit-depth note once per ``notes`` set. ``image`` is the file as
    :func:`read_photo_input` returns it, when the caller has read it already. The record's ``notes`` and
    ``warnings`` list what was printed.
    """
    from basicsr_denoise.metrics.psnr_ssim import calculate_psnr, calculate_ssim
    from basicsr_denoise.utils.img_util import make_comparison
    from basicsr_denoise.utils.photo_io import PhotoInfo, output_bit_depth, write_photo
    notes = set() if notes is None else notes
    stem = osp.splitext(osp.basename(path))[0]  # the mask seed's name, as in test.py
    img, depth, info = read_photo_input(path) if image is None else image
    warnings = list(info.warnings)
    for message in info.warnings:
        print(f'warning: {message}', file=sys.stderr, flush=True)
    out_path = output_path(outdir, name, path, fmt)
    out_depth, note = output_bit_depth(depth, osp.splitext(out_path)[1])
    if note and note not in notes:
        notes.add(note)
        print(f'note: {note}', file=sys.stderr, flush=True)
    gt = _find_gt(gt_dir, stem) if gt_dir else None
    t0 = time.perf_counter()
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(denoiser.device)
    out, extra = denoiser.process(x, stem, desc=label or name)
    if denoiser.device.type == 'cuda':
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out = out[0].detach().cpu().numpy().transpose(1, 2, 0)
    rec = {'name': name, 'input': path, 'output': out_path, 'height': img.shape[0],
           'width': img.shape[1], 'channels': img.shape[2], 'bit_depth': depth, 'seconds': seconds, **extra}
    panels, labels = [img, out], ['noisy', 'denoised']
    line = f'{name}: {img.shape[1]}x{img.shape[0]}x{img.shape[2]} {depth}-bit, {seconds:.1f} s'
    for key in ('sigma_hat', 'eta_hat', 'k_hat'):
        if isinstance(extra.get(key), float):
            line += f', {key} {extra[key]:.4g}'
    if 'model' in extra:
        line += f", {extra['model']}"
    if 'warning' in extra:
        warnings.append(extra['warning'])
        print(f"warning: {extra['warning']}", file=sys.stderr, flush=True)
    if gt is not None and gt.shape == img.shape:
        rec['psnr'] = calculate_psnr(out, gt, float_mode=True)
        rec['ssim'] = calculate_ssim(out, gt, float_mode=True, window='uniform')
        rec['psnr_noisy'] = calculate_psnr(img, gt, float_mode=True)
        labels = [f"noisy {rec['psnr_noisy']:.2f} dB", f"denoised {rec['psnr']:.2f} dB", 'clean']
        panels.append(gt)
        line += f", PSNR {rec['psnr_noisy']:.2f} -> {rec['psnr']:.2f} dB, SSIM {rec['ssim']:.4f}"
    write_photo(make_comparison(panels, labels), osp.join(outdir, f'{name}_compare.png'),
                PhotoInfo(icc_profile=info.icc_profile))
    # last: its presence marks the image as done
    for message in write_photo(out, out_path, info, quality=quality, bit_depth=out_depth):
        warnings.append(message)
        print(f'warning: {message}', file=sys.stderr, flush=True)
    if note:
        rec['note'] = note
    if warnings:
        rec['warnings'] = warnings
    return rec, line


def _read_records(path):
    """``(records by input path, failed inputs)`` of a metrics or partial file; nothing when it is unreadable."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        return {r['input']: r for r in data.get('images', [])}, list(data.get('failed', []))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, []


class MetricsWriter:
    """Keeps ``metrics.json`` current: every rank writes its own part after each image, rank 0 merges the parts."""

    def __init__(self, outdir, files, header, rank, world, previous=None):
        self.outdir, self.files, self.header = outdir, files, header
        self.rank, self.world = rank, world
        self.records, self.failed = dict(previous or {}), []

    def part_path(self, rank):
        return osp.join(self.outdir, f'.metrics.rank{rank}.json')

    def merged(self):
        records, failed = dict(self.records), list(self.failed)
        if self.world > 1:
            for r in range(self.world):
                part, bad = _read_records(self.part_path(r))
                records.update(part)
                failed += [f for f in bad if f not in failed]
        images = [records[f] for f in self.files if f in records]
        mean = {k: float(np.mean([r[k] for r in images if k in r])) for k in ('psnr', 'ssim', 'seconds', 'sigma_hat')
                if any(k in r for r in images)}
        return {**self.header, 'images': images, 'mean': mean, 'count': len(images), 'failed': failed}

    def update(self, path, record=None):
        if record is None:
            self.failed.append(path)
        else:
            self.records[path] = record
        if self.world > 1:
            atomic_write_json({'images': list(self.records.values()), 'failed': self.failed}, self.part_path(self.rank))
        if self.rank == 0:
            atomic_write_json(self.merged(), osp.join(self.outdir, METRICS))

    def finish(self):
        """Gather every rank's records; rank 0 writes the final ``metrics.json`` and removes the parts."""
        from basicsr_denoise.utils.dist import barrier, gather_shards
        parts = gather_shards([(self.records, self.failed)])
        for records, failed in parts:
            self.records.update(records)
            self.failed += [f for f in failed if f not in self.failed]
        result = self.merged()
        if self.rank == 0:
            atomic_write_json(result, osp.join(self.outdir, METRICS))
        barrier()
        if self.rank == 0:  # the parts are merged (also those a killed run left behind)
            for part in glob.glob(osp.join(self.outdir, '.metrics.rank*.json')):
                os.remove(part)
        return result


def metrics_header(method, preset, denoiser, sigma=None, noise=None, level=None):
    """The run-wide keys of ``metrics.json``: ``method``, ``preset``, ``sigma``, ``weights`` (and, for n2s,
    ``noise`` and ``level``)."""
    header = {'method': method, 'preset': preset if method == 'mpi' else None, 'sigma': sigma,
              'weights': denoiser.weights}
    if method == 'n2s':
        header.update(noise=noise or 'gaussian', level=sigma if level is None else level)
    return header


def denoise_files(files, outdir, *, method='mpi', preset=DEFAULT_PRESET, weights=None, network_g=None, device='auto',
                  gt_dir=None, seed=0, iterations=None, beta=None, sigma=None, tile=None, skip_existing=False,
                  format=None, quality=None, noise=None, level=None):
    """Denoise ``files`` into ``outdir`` (every keyword as the command-line flag of the same name).

    ``format`` (png, jpg, tif; default: the input's) and ``quality`` (JPEG, 1-100, default 95) are
    ``--format`` and ``--quality``; ``noise`` (gaussian, poisson, gamma) and ``level`` are ``--noise`` and
    its level flag (``--sigma``, ``--eta``, ``--k``).

    Under torchrun (``WORLD_SIZE`` > 1) each rank denoises ``files[rank::world]``; rank 0 writes
    ``metrics.json`` with every image, each record naming the ``rank`` that filled it.

    Returns:
        dict: The content of ``metrics.json``: ``method``, ``preset``, ``sigma``, ``weights``, ``images``
        (records in input order), ``mean``, ``count``, ``failed``.
    """
    from basicsr_denoise.inference import load_denoiser
    from basicsr_denoise.utils.dist import get_dist_info, shard
    from basicsr_denoise.utils.photo_io import check_quality, output_extension
    output_extension('', format)  # a bad --format or --quality is an error before anything runs
    check_quality(quality)
    rank, world = get_dist_info()
    prepare_outdir(outdir)
    names = dict(zip(files, output_names(files)))
    denoiser = load_denoiser(method, preset, weights, device, seed, sigma, network_g=network_g,
                             iterations=iterations, beta=beta, tile=tile, progress=True, noise=noise, level=level)
    previous = {}
    if skip_existing:
        for part in [osp.join(outdir, METRICS)] + [osp.join(outdir, f) for f in sorted(os.listdir(outdir))
                                                  if f.startswith('.metrics.rank')]:
            previous.update(_read_records(part)[0])
    writer = MetricsWriter(outdir, files, metrics_header(method, preset, denoiser, sigma, noise, level), rank, world)
    mine = shard(files, rank, world)
    if rank == 0:
        print(f'denoise: {len(files)} image(s), {denoiser.summary}' + (f', {world} processes' if world > 1 else ''),
              flush=True)
    notes = set()
    for i, path in enumerate(mine):
        name = names[path]
        label = f'[{i + 1}/{len(mine)}' + (f' rank {rank}' if world > 1 else '') + f'] {name}'
        if skip_existing and osp.isfile(output_path(outdir, name, path, format)):
            writer.update(path, previous.get(path) or {'name': name, 'input': path, 'rank': rank, 'skipped': True})
            print(f'{name}: skipped (output exists)', flush=True)
            continue
        try:
            rec, line = denoise_one(denoiser, path, name, outdir, gt_dir, label, format, quality, notes)
        except BasicSRDenoiseError as exc:
            msg = str(exc)
            if path not in msg:  # name the file
                msg = f'{path}: {msg.removeprefix(osp.splitext(osp.basename(path))[0] + ": ")}'
            print(f'error: {msg}', file=sys.stderr, flush=True)
            writer.update(path)
            continue
        rec['rank'] = rank
        writer.update(path, rec)
        print(line, flush=True)
    return writer.finish()


def parse_network(text):
    """``--network``: a YAML block (``'{type: MaskedNet, ...}'``) or an option file holding ``network_g``."""
    import yaml

    from basicsr_denoise.utils.options import load_yaml
    if text is None:
        return None
    if osp.isfile(text):
        opt = load_yaml(text)
        return opt.get('network_g', opt)
    try:
        block = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OptionError(f'--network: not a YAML block or a file ({" ".join(str(exc).split())})') from None
    if not isinstance(block, dict) or 'type' not in block:
        raise OptionError(f"--network: expected a block with a type (e.g. '{{type: MaskedNet, ...}}') or an option "
                          f'file, got {text!r}')
    return block


def build_parser():
    parser = argparse.ArgumentParser(prog='basicsr-denoise',
                                     description='Denoise your own images: MPI zero-shot (default) or Noise2Score.')
    parser.add_argument('inputs', nargs='+', help='Image files and/or folders.')
    parser.add_argument('-o', '--output', required=True, help='Output folder.')
    parser.add_argument('--method', default='mpi', choices=['mpi', 'n2s'],
                        help='mpi: zero-shot masked filling (default); n2s: Noise2Score.')
    parser.add_argument('--noise', default=None, choices=['gaussian', 'poisson', 'gamma'],
                        help='n2s: the noise family (default gaussian); the shipped model is chosen per image by '
                             'it, the level and the image being gray or colour.')
    parser.add_argument('--preset', default=DEFAULT_PRESET, choices=MPI_PRESETS,
                        help=f'MPI preset. Default: {DEFAULT_PRESET}.')
    parser.add_argument('--sigma', type=float, default=None,
                        help='n2s: the known Gaussian sigma (0-255); default: estimated per image.')
    parser.add_argument('--eta', type=float, default=None,
                        help='n2s --noise poisson: the known eta (y = eta * Poisson(x / eta)); default: estimated.')
    parser.add_argument('--k', type=float, default=None,
                        help='n2s --noise gamma: the known shape k (y = x * Gamma(k, 1/k)); default: estimated.')
    parser.add_argument('--weights', default=None, help="Checkpoint path or name (shipped, or fetched: "
                        "basicsr-denoise weights list); default: the preset's.")
    parser.add_argument('--network', default=None,
                        help='Architecture of a checkpoint that does not store one: a YAML network_g block '
                             "('{type: MaskedNet, in_ch: 3, mask_mode: multchannel, backbone: {type: DnCNN}}') "
                             'or an option file.')
    parser.add_argument('--device', default='auto', help='auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps.')
    parser.add_argument('--gt', default=None, help='Optional folder of clean images (same names) for PSNR/SSIM.')
    parser.add_argument('--recursive', action='store_true', help='Search folders recursively.')
    parser.add_argument('--iterations', type=int, default=None,
                        help="Override the preset's number of steps (a large photo's adaptation scales alike).")
    parser.add_argument('--beta', type=float, default=None, help="Override the preset's ensemble weight.")
    parser.add_argument('--seed', type=int, default=0, help='Mask seed (results repeat exactly for a seed).')
    parser.add_argument('--tile', type=int, default=None,
                        help='n2s: score in tiles of this side (0: never; default: 512-px tiles above 2 MP).')
    parser.add_argument('--skip-existing', action='store_true',
                        help='Keep the images whose <name>_denoised.<ext> exists (and their metrics.json records).')
    parser.add_argument('--format', default=None, choices=['png', 'jpg', 'tif'],
                        help="Output format. Default: the input's (PNG for BMP, HEIC and .npy inputs). 16-bit "
                             'inputs keep 16 bits in png and tif; EXIF and the ICC profile are kept.')
    parser.add_argument('--quality', type=int, default=None,
                        help='JPEG quality 1-100. Default: 95.')
    return parser


def run(args):
    """Denoise as ``args`` say; under torchrun's environment the images are split across the processes.

    Returns:
        tuple: ``(metrics, rank)``.
    """
    from basicsr_denoise.utils.dist import destroy_on_exit, get_dist_info, init_dist
    from basicsr_denoise.utils.photo_io import check_quality
    levels = {'gaussian': ('--sigma', args.sigma), 'poisson': ('--eta', args.eta), 'gamma': ('--k', args.k)}
    for flag, value in (*levels.values(), ('--tile', args.tile), ('--noise', args.noise)):
        if args.method == 'mpi' and value is not None:
            raise OptionError(f'{flag} applies to --method n2s only (MPI needs no noise level and tiles by its preset)')
    family = args.noise or 'gaussian'
    for name, (flag, value) in levels.items():
        if value is not None and name != family:
            raise OptionError(f'{flag} applies to --noise {name}; --noise {family} takes {levels[family][0]}')
        if value is not None and not value > 0:
            raise OptionError(f'{flag} must be > 0, got {value:g}')
    level = levels[family][1]
    check_quality(args.quality)
    if args.quality is not None and args.format in ('png', 'tif'):
        raise OptionError(f'--quality applies to JPEG output only, not --format {args.format}')
    distributed = int(os.environ.get('WORLD_SIZE', 1)) > 1
    files = collect_inputs(args.inputs, args.recursive)
    with destroy_on_exit():
        if distributed:
            init_dist('pytorch')
        metrics = denoise_files(files, args.output, method=args.method, preset=args.preset, weights=args.weights,
                                network_g=parse_network(args.network), device=args.device, gt_dir=args.gt,
                                seed=args.seed, iterations=args.iterations, beta=args.beta, sigma=args.sigma,
                                tile=args.tile, skip_existing=args.skip_existing, format=args.format,
                                quality=args.quality, noise=args.noise, level=None if family == 'gaussian' else level)
        return metrics, get_dist_info()[0]


def main(argv=None):
    """The ``basicsr-denoise`` command. User errors print one line and exit 2; failed images exit 1.

    Returns None (a console script would print a returned value and exit 1): use :func:`denoise_files`
    for the metrics.
    """
    from basicsr_denoise.utils.dist import exit_worker
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['weights'] and argv[1:2] in ([], ['list'], ['fetch'], ['-h'], ['--help']):
        from basicsr_denoise.weights import weights_command  # the model zoo (basicsr_denoise.weights.zoo)
        sys.exit(exit_on_user_error(weights_command, argv[1:]))
    args = build_parser().parse_args(argv)
    res, rank = exit_on_user_error(run, args)
    if rank == 0:
        summary = f"done: {res['count']} image(s) in {args.output}"
        if 'psnr' in res['mean']:
            summary += f", mean PSNR {res['mean']['psnr']:.2f} dB"
        print(summary + (f", {len(res['failed'])} failed" if res['failed'] else ''), flush=True)
    exit_worker(1 if res['failed'] else 0)


if __name__ == '__main__':
    main()
