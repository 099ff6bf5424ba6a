"""The local web app: drop in photos, denoise them, compare noisy and denoised with a slider.

Usage::

    pip install 'basicsr_denoise[app]'
    basicsr-denoise-app [--host 127.0.0.1] [--port 7860] [--max-upload-mb 50] [--device auto]
    python -m basicsr_denoise.app ...      # the same

The page offers Noise2Score (one forward pass; its noise family, and the level known or estimated), MPI
with its synthetic-noise presets (``quick`` first, the default) and MPI for real camera noise
(``real-fast``). A progress bar follows the MPI steps and tiles, and an MPI run first shows the time it is
estimated to take (:meth:`~basicsr_denoise.inference.MPIDenoiser.estimate_seconds`). The results are a
before/after slider, zoom crops at a chosen point, the full-resolution outputs in the chosen format
(with the input's EXIF and ICC profile) and the ``metrics.json`` record, as the ``basicsr-denoise`` command
writes them.

:class:`DenoiseService` does the work without Gradio: every image goes through the command's
:func:`~basicsr_denoise.cli.denoise_one` and so through :mod:`basicsr_denoise.inference`; the app holds no
denoising logic of its own. Loaded networks stay loaded, one per method and weights. Everything the app
writes (uploads, results, previews) is in one temporary folder, removed when the app stops.
"""

import argparse
import os
import os.path as osp
import shutil
import signal
import sys
import tempfile
import threading
import time

import numpy as np

from basicsr_denoise.utils.errors import BasicSRDenoiseError, DataError, OptionError

#: The methods of the page: label -> (method, preset or None). The synthetic MPI presets come from the preset menu.
METHODS = {'MPI (zero-shot)': ('mpi', None), 'Noise2Score (fast)': ('n2s', None),
           'MPI, real camera noise (real-fast)': ('mpi', 'real-fast')}
#: The synthetic-noise MPI presets of the page, the default first.
SYNTHETIC_PRESETS = ('quick', 'gauss', 'fast')
#: Output formats of the page: label -> ``--format`` value (None: the input's).
FORMATS = {'same as input': None, 'PNG': 'png', 'JPEG': 'jpg', 'TIFF': 'tif'}
DEFAULT_MAX_UPLOAD_MB = 50
#: Result folders kept in the temporary folder (Gradio has copied older ones to its cache already).
KEEP_JOBS = 4
#: Longest side of the pictures shown on the page (the downloads keep the full resolution).
PREVIEW_SIDE = 1600


def need_gradio():
    """Import Gradio, or a one-line error that names the extra to install."""
    try:
        import gradio
    except ImportError:
        raise OptionError("the web app needs Gradio: pip install 'basicsr_denoise[app]'") from None
    return gradio


def preview(img, path):
    """Write ``img`` (float ``(H, W, C)`` in [0, 1]) as an 8-bit PNG of at most :data:`PREVIEW_SIDE` px a side."""
    import cv2

    from basicsr_denoise.utils.img_util import imwrite
    h, w = img.shape[:2]
    scale = PREVIEW_SIDE / max(h, w)
    if scale < 1:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        img = img[..., None] if img.ndim == 2 else img
    imwrite(np.clip(img, 0, 1), path)
    return path


def zoom_crops(noisy, denoised, x=0.5, y=0.5, side=128, zoom=3):
    """Side-by-side crops of ``noisy`` and ``denoised`` (float ``(H, W, C)``) of ``side`` px around the point
    ``(x, y)`` (fractions of the width and height), enlarged ``zoom`` times without smoothing, labelled."""
    from basicsr_denoise.utils.img_util import make_comparison
    h, w = noisy.shape[:2]
    ch, cw = min(side, h), min(side, w)
    top = int(np.clip(round(y * h - ch / 2), 0, h - ch))
    left = int(np.clip(round(x * w - cw / 2), 0, w - cw))
    crops = [np.repeat(np.repeat(np.clip(im[top:top + ch, left:left + cw], 0, 1), zoom, 0), zoom, 1)
             for im in (noisy, denoised)]
    return make_comparison(crops, [f'noisy x{zoom}', f'denoised x{zoom}'])


class DenoiseService:
    """The app's work, without Gradio: denoise uploaded files into a fresh result folder per request.

    Args:
        root (str | None): The temporary folder; everything is written under it. Default: None (a new one).
        max_upload_mb (float): Larger files are refused. Default: :data:`DEFAULT_MAX_UPLOAD_MB`.
        device (str): Default: ``'auto'``.
    """

    def __init__(self, root=None, max_upload_mb=DEFAULT_MAX_UPLOAD_MB, device='auto'):
        self.root = osp.abspath(root or tempfile.mkdtemp(prefix='basicsr_denoise_app_'))
        os.makedirs(self.root, exist_ok=True)
        if not max_upload_mb > 0:
            raise OptionError(f'--max-upload-mb: must be > 0, got {max_upload_mb:g}')
        self.max_upload_mb = float(max_upload_mb)
        self.device = device
        self.networks = {}  # the loaded networks, shared by every denoiser (inference.load_denoiser)
        self._denoisers = {}
        self._estimates = {}
        self._lock = threading.Lock()
        self._jobs = 0

    @property
    def uploads(self):
        """Where Gradio puts uploads (``GRADIO_TEMP_DIR``)."""
        return osp.join(self.root, 'uploads')

    def denoiser(self, method, preset=None, noise=None, level=None, iterations=None):
        """The denoiser of these settings, built once; they share :attr:`networks`."""
        from basicsr_denoise.inference import load_denoiser
        key = (method, preset, noise, level, iterations)
        if key not in self._denoisers:
            if method == 'mpi':
                den = load_denoiser('mpi', preset=preset, device=self.device, iterations=iterations,
                                    networks=self.networks)
            else:
                den = load_denoiser('n2s', device=self.device, noise=noise, level=level, networks=self.networks)
            self._denoisers[key] = den
        return self._denoisers[key]

    def estimate(self, den, shape):
        """Estimated seconds of an MPI fill of an image of ``shape`` ``(H, W, C)``, measured once per size."""
        key = (id(den), tuple(shape))
        if key not in self._estimates:
            self._estimates[key] = den.estimate_seconds(*shape)
        return self._estimates[key]

    def check_upload(self, path):
        """A one-line DataError for a missing file or one over the size limit."""
        name = osp.basename(path)
        if not osp.isfile(path):
            raise DataError(f'{name}: the upload is missing')
        mb = osp.getsize(path) / 2**20
        if mb > self.max_upload_mb:
            raise DataError(f'{name}: {mb:.1f} MB is over the upload limit of {self.max_upload_mb:g} MB '
                            '(basicsr-denoise-app --max-upload-mb)')

    def _new_job(self):
        """A fresh result folder; all but the newest :data:`KEEP_JOBS` older ones are removed."""
        self._jobs += 1
        folder = osp.join(self.root, 'jobs', f'{self._jobs:05d}')
        os.makedirs(folder)
        done = sorted(os.listdir(osp.join(self.root, 'jobs')))
        for old in done[:-KEEP_JOBS]:
            shutil.rmtree(osp.join(self.root, 'jobs', old), ignore_errors=True)
        return folder

    def run(self, paths, method='mpi', preset='quick', noise='gaussian', level=None, iterations=None, fmt=None,
            quality=None, listener=None, announce=None):
        """Denoise ``paths`` as the command would, into a new folder under :attr:`root`.

        Args:
            paths (list[str]): The uploaded files.
            method (str): ``'mpi'`` or ``'n2s'``.
            preset (str): MPI preset. noise, level: Noise2Score family and known level (None: estimated).
            iterations (int | None): MPI steps instead of the preset's.
            fmt (str | None): ``png``, ``jpg``, ``tif`` or None (the input's). quality (int | None): JPEG quality.
            listener (callable | None): ``listener(desc, done, total)`` of the progress bars
                (:func:`~basicsr_denoise.utils.logger.progress_listener`).
            announce (callable | None): Called with a one-line message before each long step (the estimate).

        Returns:
            dict: ``folder``, ``results`` (per image: ``record``, ``noisy``/``denoised`` previews,
            ``output``, ``compare``), ``errors`` (one line per failed file), ``metrics`` (the
            ``metrics.json`` content) and ``metrics_path``.
        """
        from basicsr_denoise.cli import MetricsWriter, denoise_one, metrics_header, output_names, read_photo_input
        from basicsr_denoise.utils.logger import progress_listener
        from basicsr_denoise.utils.photo_io import check_quality, output_extension
        if not paths:
            raise DataError('no photo uploaded: drop in one photo or several')
        output_extension('', fmt)
        quality = None if fmt not in (None, 'jpg') else check_quality(quality)
        with self._lock:
            den = self.denoiser(method, preset if method == 'mpi' else None, noise if method == 'n2s' else None,
                                level if method == 'n2s' else None, iterations if method == 'mpi' else None)
            folder = self._new_job()
            sigma = level if method == 'n2s' and noise == 'gaussian' else None
            header = metrics_header(method, preset, den, sigma, noise, None if sigma is not None else level)
            writer = MetricsWriter(folder, list(paths), header, 0, 1)
            results, errors = [], []
            for i, (path, name) in enumerate(zip(paths, output_names(paths))):
                label = f'[{i + 1}/{len(paths)}] {name}'
                try:
                    self.check_upload(path)
                    image = read_photo_input(path)
                    if method == 'mpi':
                        seconds = self.estimate(den, image[0].shape)
                        if announce:
                            announce(f'{label}: MPI {preset}, about {seconds:.0f} s '
                                     f'({image[0].shape[1]}x{image[0].shape[0]})')
                    with progress_listener(listener or (lambda *a: None)):
                        rec, line = denoise_one(den, path, name, folder, label=label, fmt=fmt, quality=quality,
                                             image=image)
                    if method == 'mpi':
                        rec['estimated_seconds'] = seconds
                except BasicSRDenoiseError as exc:
                    msg = str(exc).replace(path, osp.basename(path))
                    errors.append(msg if osp.basename(path) in msg else f'{osp.basename(path)}: {msg}')
                    writer.update(path)
                    continue
                output = rec['output']
                rec.update(input=osp.basename(path), output=osp.basename(output))  # no temporary paths in the record
                writer.update(path, rec)
                stem = osp.join(folder, f'.{name}')
                results.append({'record': rec, 'line': line, 'output': output, 'compare': osp.join(folder, f'{name}_compare.png'),
                                'noisy': preview(image[0], f'{stem}_noisy.png'),
                                'denoised': preview(self._read_output(output), f'{stem}_denoised.png')})
            metrics = writer.merged()
            return {'folder': folder, 'results': results, 'errors': errors, 'metrics': metrics,
                    'metrics_path': osp.join(folder, 'metrics.json')}

    @staticmethod
    def _read_output(path):
        from basicsr_denoise.cli import read_input
        return read_input(path)[0]

    def close(self):
        """Remove the temporary folder and everything in it."""
        shutil.rmtree(self.root, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ the page
def _status(job, seconds):
    lines = []
    for r in job['results']:
        rec = r['record']
        line = r['line']  # the command's console line
        if 'estimated_seconds' in rec:
            line += f" (estimated {rec['estimated_seconds']:.0f} s)"
        lines.append(line)
        lines += [f'warning: {w}' for w in rec.get('warnings', [])]
    lines += [f'error: {e}' for e in job['errors']]
    lines.append(f"Done: {len(job['results'])} of {len(job['results']) + len(job['errors'])} image(s) "
                 f'in {seconds:.1f} s.')
    return '\n\n'.join(lines)


def build_app(service):
    """The Gradio page of ``service`` (a :class:`DenoiseService`); returns ``(blocks, launch keyword arguments)``."""
    gr = need_gradio()
    from basicsr_denoise.cli import read_input
    from basicsr_denoise.inference import N2S_FAMILIES

    def run(files, method_label, preset, steps, noise, estimate, level, fmt_label, quality,
            progress=gr.Progress()):
        method, fixed = METHODS[method_label]
        paths = [f if isinstance(f, str) else f.name for f in (files or [])]
        t0 = time.perf_counter()

        def listener(desc, done, total):
            progress((done, total) if total else None, desc=desc)

        def announce(message):
            gr.Info(message)
            progress(0.0, desc=message)

        try:
            job = service.run(paths, method, fixed or preset, noise, None if estimate else level,
                              int(steps) if steps else None, FORMATS[fmt_label], int(quality), listener, announce)
        except BasicSRDenoiseError as exc:
            raise gr.Error(str(exc)) from None
        if not job['results']:
            raise gr.Error(' | '.join(job['errors']))
        state = [{'noisy': r['noisy'], 'denoised': r['denoised'], 'name': r['record']['name']} for r in job['results']]
        names = [s['name'] for s in state]
        files_out = [r['output'] for r in job['results']] + [r['compare'] for r in job['results']]
        files_out.append(job['metrics_path'])
        first = state[0]
        return (_status(job, time.perf_counter() - t0), (first['noisy'], first['denoised']),
                gr.update(choices=names, value=names[0]), state, crops(state, names[0], 50, 50), files_out,
                job['metrics'])

    def show(state, name):
        for s in state or []:
            if s['name'] == name:
                return (s['noisy'], s['denoised'])
        return None

    def crops(state, name, x, y):
        for s in state or []:
            if s['name'] == name:
                return zoom_crops(read_input(s['noisy'])[0], read_input(s['denoised'])[0], x / 100, y / 100)
        return None

    def method_changed(label):
        method, fixed = METHODS[label]
        return gr.update(visible=method == 'mpi' and fixed is None), gr.update(visible=method == 'n2s')

    def noise_changed(noise):
        return gr.update(label=f'{N2S_FAMILIES[noise][1]} (known level)')

    with gr.Blocks(title='basicsr_denoise', analytics_enabled=False, delete_cache=(600, 3600)) as blocks:
        gr.Markdown('# basicsr_denoise\nDenoise photos without clean training data: MPI (zero-shot) or '
                    'Noise2Score. Drop in one photo or several, choose a method, and compare.')
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label='Photos', file_count='multiple', elem_id='upload')
                method = gr.Radio(list(METHODS), value=next(iter(METHODS)), label='Method', elem_id='method')
                with gr.Group(visible=True) as mpi_box:
                    preset = gr.Dropdown(list(SYNTHETIC_PRESETS), value=SYNTHETIC_PRESETS[0], label='MPI preset',
                                         elem_id='preset')
                    steps = gr.Number(value=0, precision=0, minimum=0, label="MPI steps (0: the preset's)",
                                      elem_id='steps')
                with gr.Group(visible=False) as n2s_box:
                    noise = gr.Dropdown(list(N2S_FAMILIES), value='gaussian', label='Noise family', elem_id='noise')
                    estimate = gr.Checkbox(value=True, label='Estimate the level', elem_id='estimate')
                    level = gr.Number(value=25, minimum=0, label='sigma (known level)', elem_id='level')
                fmt = gr.Dropdown(list(FORMATS), value='same as input', label='Output format', elem_id='format')
                quality = gr.Slider(1, 100, value=95, step=1, label='JPEG quality', elem_id='quality')
                button = gr.Button('Denoise', variant='primary', elem_id='run')
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id='status')
                slider = gr.ImageSlider(label='noisy | denoised', type='filepath', elem_id='slider')
                shown = gr.Dropdown([], label='Show', elem_id='shown')
                zoom = gr.Image(label='Zoom', type='numpy', interactive=False, elem_id='zoom')
                with gr.Row():
                    zx = gr.Slider(0, 100, value=50, step=1, label='zoom x (%)', elem_id='zoom_x')
                    zy = gr.Slider(0, 100, value=50, step=1, label='zoom y (%)', elem_id='zoom_y')
                downloads = gr.File(label='Downloads (full resolution, metrics.json)', file_count='multiple',
                                    interactive=False, elem_id='downloads')
                metrics = gr.JSON(label='metrics.json', elem_id='metrics')
        state = gr.State([])
        method.change(method_changed, method, [mpi_box, n2s_box])
        noise.change(noise_changed, noise, level)
        button.click(run, [files, method, preset, steps, noise, estimate, level, fmt, quality],
                     [status, slider, shown, state, zoom, downloads, metrics])
        shown.change(show, [state, shown], slider)
        for control in (shown, zx, zy):
            control.change(crops, [state, shown, zx, zy], zoom)
    theme = gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                              font_mono=['ui-monospace', 'monospace'])  # system fonts: the page loads nothing remote
    return blocks, {'theme': theme, 'max_file_size': f'{service.max_upload_mb:g}mb', 'allowed_paths': [service.root]}


# ------------------------------------------------------------------------------------------------ the command
def build_parser():
    parser = argparse.ArgumentParser(prog='basicsr-denoise-app',
                                     description='A local web page to denoise photos and compare the results.')
    parser.add_argument('--host', default='127.0.0.1', help='Address to listen on. Default: 127.0.0.1 (this computer '
                        'only); 0.0.0.0 serves the local network.')
    parser.add_argument('--port', type=int, default=7860, help='Port. Default: 7860.')
    parser.add_argument('--max-upload-mb', type=float, default=DEFAULT_MAX_UPLOAD_MB,
                        help=f'Refuse larger uploads. Default: {DEFAULT_MAX_UPLOAD_MB}.')
    parser.add_argument('--device', default='auto', help='auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps.')
    return parser


def serve(args, stop=None):
    """Serve the page until ``stop`` (a threading.Event) is set or SIGINT/SIGTERM arrives; then remove the
    temporary folder. Prints ``Running on http://HOST:PORT`` once the page answers."""
    need_gradio()  # a one-line error before anything else
    if not 0 < args.port < 65536:
        raise OptionError(f'--port: must be 1-65535, got {args.port}')
    service = DenoiseService(max_upload_mb=args.max_upload_mb, device=args.device)
    stop = stop or threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    os.environ['GRADIO_TEMP_DIR'] = service.uploads  # uploads and Gradio's cache inside the temporary folder
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        blocks, launch = build_app(service)
        try:
            blocks.queue().launch(server_name=args.host, server_port=args.port, prevent_thread_lock=True,
                                  quiet=True, show_error=True, inbrowser=False, share=False,
                                  footer_links=[], **launch)
        except OSError as exc:
            raise OptionError(f'--host {args.host} --port {args.port}: cannot listen there ({exc})') from None
        print(f'Running on http://{args.host}:{args.port} (temporary folder {service.root}; Ctrl+C stops)',
              flush=True)
        stop.wait()
        blocks.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        service.close()
    print('stopped; temporary folder removed', flush=True)


def main(argv=None):
    """The ``basicsr-denoise-app`` command; user errors print one line and exit 2."""
    from basicsr_denoise.utils.errors import exit_on_user_error
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    exit_on_user_error(serve, args)


if __name__ == '__main__':
    main()
