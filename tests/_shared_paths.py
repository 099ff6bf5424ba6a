"""Where the shared material (``../shared``) is, for tests that need it.

``BASICSR_DENOISE_SHARED`` overrides the default ``<repo>/../shared``. Tests that need a
file from there call :func:`shared_file`, which skips the test when it is absent.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir():
    """The shared folder (may not exist)."""
    return Path(os.environ.get('BASICSR_DENOISE_SHARED', REPO_ROOT.parent / 'shared'))


def shared_file(*parts):
    """``shared_dir() / parts``, or skip the calling test when it does not exist."""
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f'shared file not available: {path} (set BASICSR_DENOISE_SHARED)')
    return path


def mpi_checkpoint(name):
    """Path of one of the MPI authors' released checkpoints, or skip."""
    return shared_file('reference', 'mpi_official', name)
