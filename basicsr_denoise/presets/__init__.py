"""Presets: option fragments (``network_g``, ``path.pretrain_network_g``, ``fill``/``score``) shipped as
package data. The ``denoise`` command, the Python API and the option files (``_base_: mpi_fast``) all read
them from here, so each preset is written down once.

===========  ========================  ============  ======  =====  =======
preset       weights                   hidden %      steps   beta   shuffle
===========  ========================  ============  ======  =====  =======
gauss        synthetic (per channel)   30            1000    0.99   1
fast         synthetic                 30            200     0.90   1
real         real (one shared mask)    85            1000    0.99   1
real-fast    real                      85            200     0.90   1
sidd         real                      90            800     0.99   2
sidd-fast    real                      90            200     0.90   2
===========  ========================  ============  ======  =====  =======
"""

import os.path as osp

PRESET_DIR = osp.dirname(osp.abspath(__file__))
#: The MPI presets of ``--preset`` / ``preset=``.
MPI_PRESETS = ('gauss', 'fast', 'real', 'real-fast', 'sidd', 'sidd-fast')
#: The preset of ``denoise``, ``basicsr-denoise`` and ``make demo`` when none is named.
DEFAULT_PRESET = 'fast'


def preset_file(name):
    """The YAML file of preset ``name`` (``'fast'`` -> ``mpi_fast.yml``; ``'n2s'``; or a file's own name)."""
    stem = name if name.startswith(('mpi_', 'n2s', '_')) else 'mpi_' + name.replace('-', '_')
    return osp.join(PRESET_DIR, stem + '.yml')


def load_preset(name):
    """The option dict of preset ``name`` (``_base_`` resolved).

    Raises:
        OptionError: an unknown preset, naming the known ones.
    """
    from basicsr_denoise.utils.errors import OptionError
    from basicsr_denoise.utils.options import load_yaml
    path = preset_file(name)
    if name.startswith('_') or not osp.isfile(path):
        raise OptionError(f"unknown preset '{name}' (known: {', '.join(MPI_PRESETS)}, n2s)")
    return load_yaml(path)


__all__ = ['DEFAULT_PRESET', 'MPI_PRESETS', 'load_preset', 'preset_file']
