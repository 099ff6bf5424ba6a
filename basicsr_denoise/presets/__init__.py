"""Presets: option fragments (``network_g``, ``path.pretrain_network_g``, ``fill``/``score``) shipped as
package data. The ``denoise`` command, the Python API and the option files (``_base_: mpi_fast``) all read
them from here, so each preset is written down once.

===========  ========================  ============  ======  =====  =======
preset       weights                   hidden %      steps   beta   shuffle
===========  ========================  ============  ======  =====  =======
quick        synthetic (per channel)   30            75      0.90   1
gauss        synthetic                 30            1000    0.99   1
fast         synthetic                 30            200     0.90   1
real         real (one shared mask)    85            1000    0.99   1
real-fast    real                      85            200     0.90   1
sidd         real                      90            800     0.99   2
sidd-fast    real                      90            200     0.90   2
===========  ========================  ============  ======  =====  =======

``quick`` (the default) is ours: lr 4e-3, complementary masks, bf16 where native, and large images adapted
once and filled forward-only (issue #10). The others are the authors' presets and keep their float32
settings, so parity with the paper stays measurable.
"""

import os.path as osp

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.options import PRESET_DIR, load_yaml, preset_file

#: The MPI presets of ``--preset`` / ``preset=``.
MPI_PRESETS = ('quick', 'gauss', 'fast', 'real', 'real-fast', 'sidd', 'sidd-fast')
#: The authors' presets (float32, their schedules): the parity references.
AUTHORS_PRESETS = MPI_PRESETS[1:]
#: The preset of ``denoise``, ``basicsr-denoise`` and ``make demo`` when none is named.
DEFAULT_PRESET = 'quick'


def load_preset(name):
    """The option dict of preset ``name`` (``_base_`` resolved).

    Raises:
        OptionError: an unknown preset, naming the known ones.
    """
    path = preset_file(name)
    if name.startswith('_') or not osp.isfile(path):
        raise OptionError(f"unknown preset '{name}' (known: {', '.join(MPI_PRESETS)}, n2s)")
    return load_yaml(path)


__all__ = ['AUTHORS_PRESETS', 'DEFAULT_PRESET', 'MPI_PRESETS', 'PRESET_DIR', 'load_preset', 'preset_file']
