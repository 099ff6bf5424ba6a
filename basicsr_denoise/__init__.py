"""basicsr_denoise: zero-shot and self-supervised image denoising (MPI, Noise2Score).

The public Python API (see the README, "From Python")::

    import basicsr_denoise as bd
    clean = bd.denoise(noisy)                       # MPI, preset 'quick', the shipped weights
    clean = bd.denoise(noisy, method='n2s', sigma=25)
    den = bd.load_denoiser('mpi', preset='gauss')   # build once, call on many images
    out = den.denoise_image(noisy)

``noisy`` is a NumPy array or a torch tensor, HWC or CHW, uint8, uint16 or float in [0, 1]; the
result has the same type, layout and range. The classes :class:`MPIDenoiser` and
:class:`N2SDenoiser` take and return ``(1, C, H, W)`` float tensors.

Importing the package is cheap: it imports neither torch nor any plugin until a name is used (every
registry discovers its modules lazily, see :mod:`basicsr_denoise.utils.registry`), and it adds no
logging handler: logs appear only where the application configures logging.
"""

__version__ = '0.1.0'

_API = {'denoise', 'load_denoiser', 'MPIDenoiser', 'N2SAutoDenoiser', 'N2SDenoiser', 'Denoiser'}
__all__ = sorted(_API) + ['__version__']


def __getattr__(name):
    if name in _API:
        from basicsr_denoise import inference
        return getattr(inference, name)
    raise AttributeError(f"module 'basicsr_denoise' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | _API)
