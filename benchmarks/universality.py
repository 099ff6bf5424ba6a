"""Universality benchmark: MPI against CBM3D (and Noise2Score) on five synthetic noises and real pairs.

One command, one table. The crops, noise seeds and presets are fixed here, so the table repeats
exactly (up to the timings):

- synthetic rows: ``--crops`` seeded 128-px crops of CBSD68 and of Kodak24 each (sorted positions
  :data:`SYN_PICKS`, crop corner from ``default_rng(CROP_SEED + k)``), with the noises of
  :data:`NOISES` added in float, unclipped (noise seed ``NOISE_SEED + k``);
- real rows: the PolyU and SIDD pairs of ``<datasets>/real/`` (the images at evenly spaced sorted
  positions, ``--real_crops`` of each, a seeded 128-px crop of each).

Methods (columns):

- ``MPI ours``: our shipped weights through the user presets (``fast`` for synthetic noise;
  ``real-fast`` on PolyU, ``sidd-fast`` on SIDD, as the authors configure them), in bf16 autocast and
  channels-last unless ``--precision fp32``;
- ``MPI authors``: the same presets with the authors' weights, when ``--authors`` names the folder
  holding ``imgnet_30_multchannel_skip.pth`` and ``imgnet_80_95_singlechannel_skip.pth``;
- ``N2S ours``: Noise2Score, on the rows a shipped checkpoint matches (Gaussian sigma 25);
- ``CBM3D est.``: ``bm3d.bm3d_rgb`` with the noise std estimated from the noisy crop (Donoho's MAD);
- ``CBM3D oracle``: the sigma that is best against the ground truth (golden-section search): an upper bound no
  user has.

CBM3D comes from the ``bm3d`` package (``pip install -e '.[bench]'``). Without it, or with
``--cbm3d stub``, a 3x3 box filter stands in and every CBM3D cell is marked ``stub``.

Output in ``--out``: ``universality.md`` (PSNR / SSIM / seconds per image), ``universality.json``
(every crop), ``universality.png`` (one crop per row: noisy | MPI ours | CBM3D est. | clean), and
``crops.jsonl``, the per-crop results as they come (``--resume`` reuses them).

Example (the README table; ``--real_presets real-fast,sidd-fast`` runs both real presets on both real
sets, ``--rows`` and ``--methods`` select a subset)::

    OMP_NUM_THREADS=1 python benchmarks/universality.py --datasets datasets \\
        --authors ../shared/reference/mpi_official --real_presets real-fast,sidd-fast --out results/universality
"""

import argparse
import json
import os
import os.path as osp
import sys
import time

import numpy as np
import torch

sys.path[0] = osp.abspath(osp.join(osp.dirname(__file__), osp.pardir))

from basicsr_denoise.utils.atomic import atomic_write, atomic_write_json, atomic_write_text  # noqa: E402
from benchmarks._common import psnr, psnr_ssim  # noqa: E402
from basicsr_denoise.utils.errors import OptionError  # noqa: E402

#: Synthetic noises: row key -> (label, noise option block). Levels follow the MPI paper's experiments.
NOISES = {
    'gauss25': ('Gaussian sigma 25', {'type': 'Gaussian', 'sigma': 25}),
    'poisson30': ('Poisson lambda 30', {'type': 'Poisson', 'eta': 1 / 30}),
    'speckle25': ('Speckle 25', {'type': 'Speckle', 'sigma': 25}),
    'saltpepper5': ('Salt-and-pepper 5 %', {'type': 'SaltPepper', 'amount': 0.05}),
    'sigdep': ('Signal-dependent (0.1, 0.02)', {'type': 'SignalDependentGaussian', 'sigma_s': 0.1, 'sigma_r': 0.02}),
}
#: Real pairs: row key -> (label, folder under <datasets>/real, native MPI preset).
REAL = {'polyu': ('PolyU (real)', 'PolyU', 'real-fast'), 'sidd': ('SIDD (real)', 'SIDD_samples', 'sidd-fast')}
#: Sorted positions of the synthetic source images (disjoint from the Z1/Z2 bench crops of CBSD68).
SYN_PICKS = {'CBSD68': [4, 22, 40, 58, 13, 31, 49, 67], 'Kodak24': [1, 7, 13, 19, 4, 10, 16, 22]}
CROP, CROP_SEED, NOISE_SEED = 128, 2024, 7000
#: Oracle CBM3D: the noise std (0-255) is searched in this range with this many CBM3D runs.
ORACLE_RANGE, ORACLE_STEPS = (2.0, 150.0), 8
AUTHORS_FILES = {'syn': 'imgnet_30_multchannel_skip.pth', 'real': 'imgnet_80_95_singlechannel_skip.pth'}
METHODS = ('mpi_ours', 'mpi_authors', 'n2s_ours', 'cbm3d_est', 'cbm3d_oracle')
LABELS = {'mpi_ours': 'MPI ours', 'mpi_authors': 'MPI authors', 'n2s_ours': 'N2S ours',
          'cbm3d_est': 'CBM3D est.', 'cbm3d_oracle': 'CBM3D oracle (upper bound)'}


def _imread_rgb(path):
    from basicsr_denoise.utils.img_util import imread
    img = np.asarray(imread(path), np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3]


def _crop(img, size, rng):
    h, w = img.shape[:2]
    if h < size or w < size:
        raise OptionError(f'universality: image of {w}x{h} is smaller than the {size}-px crop')
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return img[y:y + size, x:x + size]


def _list_images(folder):
    from basicsr_denoise.utils.img_util import IMG_EXTENSIONS
    if not osp.isdir(folder):
        raise OptionError(f'universality: data folder not found: {folder}')
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(tuple(IMG_EXTENSIONS)))
    if not files:
        raise OptionError(f'universality: no images in {folder}')
    return [osp.join(folder, f) for f in files]


def synthetic_crops(datasets, n, size=CROP):
    """The clean crops of the synthetic rows: ``n`` of CBSD68 and ``n`` of Kodak24, ``(name, HWC float32)``."""
    crops = []
    for ds, picks in SYN_PICKS.items():
        files = _list_images(osp.join(datasets, ds))
        for k, pos in enumerate(picks[:n]):
            path = files[pos % len(files)]
            rng = np.random.default_rng(CROP_SEED + len(crops))
            crops.append((f'{ds}_{osp.splitext(osp.basename(path))[0]}', _crop(_imread_rgb(path), size, rng)))
    return crops


def add_noise(clean, noise_opt, seed):
    """``clean`` (HWC float32) plus the noise of ``noise_opt``, drawn from ``torch.Generator(seed)``."""
    from basicsr_denoise.noise import build_noise
    x = torch.from_numpy(np.ascontiguousarray(clean)).permute(2, 0, 1)[None]
    gen = torch.Generator().manual_seed(seed)
    return build_noise(noise_opt).sample(x, gen)[0].permute(1, 2, 0).numpy().astype(np.float32)


def real_pairs(datasets, folder, n, size=CROP):
    """``n`` seeded crops of the real pairs in ``<datasets>/real/<folder>/{noisy,gt}``."""
    noisy = _list_images(osp.join(datasets, 'real', folder, 'noisy'))
    gt_dir = osp.join(datasets, 'real', folder, 'gt')
    gt_by_stem = {osp.splitext(osp.basename(f))[0]: f for f in reversed(_list_images(gt_dir))}  # first wins
    pairs = []
    for k, i in enumerate(np.unique(np.linspace(0, len(noisy) - 1, n).round().astype(int))):
        stem = osp.splitext(osp.basename(noisy[i]))[0]
        gt = gt_by_stem.get(stem)
        if gt is None:
            raise OptionError(f'universality: no ground truth for {noisy[i]} in {gt_dir}')
        a, b = _imread_rgb(noisy[i]), _imread_rgb(gt)
        if a.shape != b.shape:
            raise OptionError(f'universality: {noisy[i]} and {gt} differ in size')
        rng = np.random.default_rng(CROP_SEED + 100 + k)
        both = _crop(np.concatenate([a, b], axis=2), size, rng)
        pairs.append((f'{folder}_{stem}', both[..., :3], both[..., 3:]))
    return pairs


class CBM3D:
    """CBM3D through the ``bm3d`` package, or a marked 3x3 box-filter stub (``stub=True`` or no package).

    Dabov et al., "Color image denoising via sparse 3D collaborative filtering with grouping constraint in
    luminance-chrominance space", ICIP 2007; ``bm3d.bm3d_rgb`` with its default profile.
    """

    def __init__(self, stub=False):
        self.bm3d = None
        if not stub:
            try:
                import bm3d
                self.bm3d = bm3d
            except ImportError:
                pass
        self.stub = self.bm3d is None

    def __call__(self, noisy, sigma255):
        if self.stub:
            p = np.pad(noisy, ((1, 1), (1, 1), (0, 0)), mode='reflect')
            h, w = noisy.shape[:2]
            return sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
        return np.asarray(self.bm3d.bm3d_rgb(noisy, sigma_psd=max(sigma255, 0.5) / 255.0), np.float32)

    def estimated(self, noisy):
        """Denoise with the MAD noise std of ``noisy``; returns ``(output, sigma)``."""
        from basicsr_denoise.noise.blind import mad_sigma
        sigma = float(mad_sigma(torch.from_numpy(noisy).permute(2, 0, 1)[None])[0]) * 255.0
        return self(noisy, sigma), sigma

    def oracle(self, noisy, gt):
        """The sigma that maximises PSNR against ``gt``: golden-section search on ``log(sigma)`` over
        :data:`ORACLE_RANGE` (:data:`ORACLE_STEPS` runs, sigma found to within about 7 %); returns
        ``(output, sigma)``."""
        tried = {}

        def run(t):
            s = round(float(np.exp(t)), 2)
            if s not in tried:
                out = self(noisy, s)
                tried[s] = (psnr(out, gt), out)
            return tried[s][0]

        a, b = np.log(ORACLE_RANGE[0]), np.log(ORACLE_RANGE[1])
        g = (np.sqrt(5) - 1) / 2
        c, d = b - g * (b - a), a + g * (b - a)
        fc, fd = run(c), run(d)
        for _ in range(ORACLE_STEPS - 2):
            if fc >= fd:
                b, d, fd = d, c, fc
                c = b - g * (b - a)
                fc = run(c)
            else:
                a, c, fc = c, d, fd
                d = a + g * (b - a)
                fd = run(d)
        best = max(tried, key=lambda s: tried[s][0])
        return tried[best][1], best


def _weights_id(path):
    """``<file name> <first 12 hex digits of its sha256>``."""
    from basicsr_denoise.weights import sha256_of
    return f'{osp.basename(path)} {sha256_of(path)[:12]}'


class Methods:
    """Builds and caches the denoisers; each call returns ``(output HWC, seconds, note)``."""

    def __init__(self, authors, cbm3d, fill=None):
        self.authors, self.cbm3d, self.fill, self.cache = authors, cbm3d, fill or {}, {}

    def _mpi(self, preset, weights):
        from basicsr_denoise.inference import MPIDenoiser
        key = (preset, weights)
        if key not in self.cache:
            fill = {'progress': False, **self.fill}
            self.cache[key] = MPIDenoiser.from_pretrained(preset, weights=weights, fill=fill, device='cpu')
        return self.cache[key]

    def config(self, method, row, preset):
        """What a result depends on besides the crop: the weights (name and sha256), iterations, CBM3D or stub."""
        if method.startswith('cbm3d'):
            return 'stub' if self.cbm3d.stub else f'bm3d {getattr(self.cbm3d.bm3d, "__version__", "")}'.strip()
        if method == 'n2s_ours':
            return _weights_id(self._n2s().weights)
        den = self._mpi(preset, self._authors_file(method, row))
        return f'{_weights_id(den.weights)} {den.filler.iterations} it {den.filler.autocast or "fp32"}'

    def _authors_file(self, method, row):
        if method != 'mpi_authors':
            return None
        return osp.join(self.authors, AUTHORS_FILES['real' if row in REAL else 'syn'])

    def _n2s(self):
        from basicsr_denoise.inference import N2SDenoiser
        if 'n2s' not in self.cache:
            self.cache['n2s'] = N2SDenoiser.from_pretrained(sigma=25, device='cpu')
        return self.cache['n2s']

    def available(self, method, row):
        if method == 'mpi_authors':
            return self.authors is not None
        if method == 'n2s_ours':
            return row == 'gauss25'
        return True

    def run(self, method, row, preset, name, noisy, gt):
        t0 = time.perf_counter()
        note = ''
        if method in ('mpi_ours', 'mpi_authors', 'n2s_ours'):
            den = self._n2s() if method == 'n2s_ours' else self._mpi(preset, self._authors_file(method, row))
            x = torch.from_numpy(np.ascontiguousarray(noisy)).permute(2, 0, 1)[None]
            out = den(x, name)[0].permute(1, 2, 0).numpy()
        elif method == 'cbm3d_est':
            out, sigma = self.cbm3d.estimated(noisy)
            note = f'{sigma:.1f}'
        else:
            out, sigma = self.cbm3d.oracle(noisy, gt)
            note = f'{sigma:g}'
        return out, time.perf_counter() - t0, note


def _rows(spec):
    rows = list(NOISES) + list(REAL) if spec == 'all' else [r.strip() for r in spec.split(',') if r.strip()]
    for r in rows:
        if r not in NOISES and r not in REAL:
            raise OptionError(f'--rows: unknown row {r!r}; choose from {", ".join([*NOISES, *REAL])}')
    return rows


class CropCache:
    """Per-crop results of a run, appended to ``<out>/crops.jsonl`` as they come, so ``--resume`` continues a
    stopped run and a table can be built in several invocations (e.g. one per row group). A record is reused
    only when its row, preset, method, crop and configuration (weights and their sha256, iterations, CBM3D or
    stub) all match. The picture's panels are kept as ``<out>/picture/<row>_<method>.npy``."""

    def __init__(self, out, resume):
        self.path, self.pic = osp.join(out, 'crops.jsonl'), osp.join(out, 'picture')
        self.done = {}
        if not resume:
            if osp.exists(self.path):
                os.remove(self.path)
            if osp.isdir(self.pic):
                for f in os.listdir(self.pic):
                    os.remove(osp.join(self.pic, f))
        elif osp.exists(self.path):
            with open(self.path) as f:
                text = f.read()
            lines = text.splitlines()
            for line in lines:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: that crop is computed again
                    continue
                self.done[self.key(rec)] = rec
            if len(self.done) != len(lines) or not text.endswith('\n'):  # rewrite it clean
                atomic_write_text(self.path, ''.join(json.dumps(r) + '\n' for r in self.done.values()))
        os.makedirs(self.pic, exist_ok=True)

    @staticmethod
    def key(rec):
        return rec['row'], rec['preset'], rec['method'], rec['image'], rec['config']

    def add(self, rec):
        self.done[self.key(rec)] = rec
        with open(self.path, 'a') as f:
            f.write(json.dumps(rec) + '\n')
            f.flush()
            os.fsync(f.fileno())

    def panel(self, row, method, arr=None):
        """Store (``arr`` given) or load the picture panel of ``row`` and ``method``; None when absent."""
        path = osp.join(self.pic, f'{row}_{method}.npy')
        if arr is not None:
            atomic_write(path, lambda f: np.save(f, arr))
            return arr
        return np.load(path) if osp.exists(path) else None


def collect(args):
    """Run every (row, preset, method, crop), reusing ``--resume``'s records; returns the per-crop records of
    this configuration, the picture rows and whether CBM3D was stubbed."""
    methods = [m.strip() for m in args.methods.split(',') if m.strip()]
    for m in methods:
        if m not in METHODS:
            raise OptionError(f'--methods: unknown method {m!r}; choose from {", ".join(METHODS)}')
    if args.authors and not all(osp.isfile(osp.join(args.authors, f)) for f in AUTHORS_FILES.values()):
        raise OptionError(f'--authors: {args.authors} must hold {" and ".join(AUTHORS_FILES.values())}')
    rows = _rows(args.rows)
    cbm3d = CBM3D(stub=args.cbm3d == 'stub')
    fill = {'iterations': args.iterations} if args.iterations else {}
    if args.precision == 'bf16':
        fill.update(autocast='bf16', channels_last=True)
    runner = Methods(args.authors, cbm3d, fill)
    cache = CropCache(args.out, args.resume)
    real_presets = [p.strip() for p in args.real_presets.split(',')] if args.real_presets != 'native' else None
    records, picture = [], []
    syn = None
    for row in rows:
        if row in NOISES:
            syn = syn if syn is not None else synthetic_crops(args.datasets, args.crops, args.crop_size)
            label, noise = NOISES[row]
            items = [(name, add_noise(clean, noise, NOISE_SEED + k), clean) for k, (name, clean) in enumerate(syn)]
            presets = ['fast']
        else:
            label, folder, native = REAL[row]
            items = real_pairs(args.datasets, folder, args.real_crops, args.crop_size)
            presets = real_presets or [native]
        for preset in presets:
            for method in methods:
                if not runner.available(method, row) or (method.startswith('cbm3d') and preset != presets[0]):
                    continue
                mpi = method.startswith('mpi')
                config = runner.config(method, row, preset)
                for k, (name, noisy, gt) in enumerate(items):
                    key = (row, preset if mpi else '', method, name, config)
                    rec = cache.done.get(key)
                    if rec is None:
                        out, secs, note = runner.run(method, row, preset, name, noisy, gt)
                        p, s = psnr_ssim(out, gt)
                        rec = {'row': row, 'label': label, 'preset': key[1], 'method': method, 'image': name,
                               'config': config, 'psnr': p, 'ssim': s, 'seconds': secs, 'sigma': note,
                               'stub': method.startswith('cbm3d') and cbm3d.stub}
                        cache.add(rec)
                        if k == 0 and preset == presets[0] and method in ('mpi_ours', 'cbm3d_est'):
                            cache.panel(row, method, out)
                    records.append(rec)
                    if args.verbose:
                        print(f"{row:12s} {preset:9s} {method:12s} {name:32s} {rec['psnr']:6.2f} dB "
                              f"{rec['seconds']:6.1f} s", flush=True)
        noisy, gt = items[0][1], items[0][2]
        picture.append((label, noisy, cache.panel(row, 'mpi_ours'), cache.panel(row, 'cbm3d_est'), gt))
    return records, picture, cbm3d.stub


def summarise(records):
    """Mean PSNR / SSIM / seconds per (row, preset, method), in first-seen order."""
    groups = {}
    for r in records:
        groups.setdefault((r['row'], r['label'], r['preset'], r['method'], r['stub']), []).append(r)
    out = []
    for (row, label, preset, method, stub), rs in groups.items():
        out.append({'row': row, 'label': label, 'preset': preset, 'method': method, 'stub': stub, 'n': len(rs),
                    'psnr': float(np.mean([r['psnr'] for r in rs])), 'ssim': float(np.mean([r['ssim'] for r in rs])),
                    'seconds': float(np.mean([r['seconds'] for r in rs]))})
    return out


def markdown(summary, stub):
    """One line per (noise row, MPI preset): each method's PSNR / SSIM / s, and MPI ours minus each CBM3D."""
    methods = [m for m in METHODS if any(s['method'] == m for s in summary)]
    head = ['noise', 'crops'] + [LABELS[m] + (' (stub)' if stub and m.startswith('cbm3d') else '') for m in methods]
    has_cbm3d = [m for m in ('cbm3d_est', 'cbm3d_oracle') if m in methods]
    head += [f'ours - {LABELS[m].split(" (")[0]}' for m in has_cbm3d if 'mpi_ours' in methods]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    keys = []
    for s in summary:
        if s['preset'] and (s['row'], s['preset']) not in keys:
            keys.append((s['row'], s['preset']))
    for row, preset in keys:
        cells = {s['method']: s for s in summary if s['row'] == row and s['preset'] in (preset, '')}
        label = next(s['label'] for s in summary if s['row'] == row)
        n = next(s['n'] for s in summary if s['row'] == row)
        line = [f'{label}, MPI `{preset}`', str(n)]
        for m in methods:
            c = cells.get(m)
            line.append(f"{c['psnr']:.2f} / {c['ssim']:.3f} / {c['seconds']:.1f} s" if c else '-')
        if 'mpi_ours' in cells:
            for m in has_cbm3d:
                line.append(f"{cells['mpi_ours']['psnr'] - cells[m]['psnr']:+.2f} dB" if m in cells else '-')
        lines.append('| ' + ' | '.join(line) + ' |')
    return '\n'.join(lines) + '\n'


def picture(rows, path):
    """One crop per row: noisy | MPI ours | CBM3D est. | clean, written atomically as PNG."""
    from basicsr_denoise.utils.img_util import imwrite
    from basicsr_denoise.utils.img_util import make_comparison
    strips = []
    for label, noisy, mpi, cbm3d, gt in rows:
        panels = [(noisy, f'{label}: noisy'), (mpi, 'MPI ours'), (cbm3d, 'CBM3D est.'), (gt, 'clean')]
        panels = [(np.clip(p, 0, 1), t) for p, t in panels if p is not None]
        strips.append(make_comparison([p for p, _ in panels], [t for _, t in panels]))
    width = max(s.shape[1] for s in strips)
    strips = [np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=1.0) for s in strips]
    imwrite(np.concatenate(strips, axis=0), path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', default=os.environ.get('BASICSR_DENOISE_DATASETS', 'datasets'),
                        help='Folder holding CBSD68/, Kodak24/ and real/{PolyU,SIDD_samples}/ '
                             '(default: $BASICSR_DENOISE_DATASETS, else datasets).')
    parser.add_argument('--authors', default=None, help="Folder with the MPI authors' two checkpoints (optional).")
    parser.add_argument('--out', default='results/universality', help='Output folder.')
    parser.add_argument('--rows', default='all', help=f'Comma list of {", ".join([*NOISES, *REAL])}, or all.')
    parser.add_argument('--methods', default=','.join(METHODS), help=f'Comma list of {", ".join(METHODS)}.')
    parser.add_argument('--crops', type=int, default=2, help='Synthetic crops per source set (max 8). Default: 2.')
    parser.add_argument('--real_crops', type=int, default=6, help='Crops per real set. Default: 6.')
    parser.add_argument('--real_presets', default='native',
                        help='MPI presets of the real rows: native (real-fast on PolyU, sidd-fast on SIDD) '
                             'or a comma list run on both sets.')
    parser.add_argument('--crop_size', type=int, default=CROP, help=f'Crop side in pixels. Default: {CROP}.')
    parser.add_argument('--iterations', type=int, default=None, help='Override the MPI iterations (quick checks).')
    parser.add_argument('--precision', choices=('bf16', 'fp32'), default='bf16',
                        help='MPI filling in bf16 autocast + channels-last (default; moves PSNR by under 0.001 dB, '
                             'README "Speed of one filling iteration") or in float32 as the presets.')
    parser.add_argument('--cbm3d', choices=('bm3d', 'stub'), default='bm3d',
                        help='stub: a marked 3x3 box filter instead of CBM3D (also used when bm3d is absent).')
    parser.add_argument('--force', action='store_true', help='Start afresh in --out, overwriting its table.')
    parser.add_argument('--resume', action='store_true',
                        help="Reuse --out's per-crop results (crops.jsonl) that match this configuration; only the "
                             'missing ones are computed. Also how a table is built in several invocations.')
    parser.add_argument('--verbose', action='store_true', help='One line per crop and method.')
    args = parser.parse_args(argv)
    if not 1 <= args.crops <= 8:
        raise OptionError(f'--crops: expected 1 to 8, got {args.crops}')
    md_path = osp.join(args.out, 'universality.md')
    if osp.exists(md_path) and not (args.force or args.resume):
        raise OptionError(f'{md_path} exists; pass --resume to continue it or --force to start afresh')
    os.makedirs(args.out, exist_ok=True)
    records, rows, stub = collect(args)
    summary = summarise(records)
    table = markdown(summary, stub)
    if stub:
        table += '\n`stub`: bm3d is not installed (or `--cbm3d stub`); a 3x3 box filter stands in for CBM3D.\n'
    atomic_write_text(md_path, table)
    atomic_write_json({'summary': summary, 'crops': records, 'cbm3d_stub': stub, 'command': ' '.join(sys.argv)},
                      osp.join(args.out, 'universality.json'))
    picture(rows, osp.join(args.out, 'universality.png'))
    print(table, end='')
    return summary


if __name__ == '__main__':
    try:
        main()
    except OptionError as e:
        sys.exit(f'error: {e}')
