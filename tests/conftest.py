"""Shared pytest fixtures."""

import os

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def shared_root():
    """``BASICSR_DENOISE_SHARED`` (set by .ci/run and the Makefile) or ``<repo>/../shared``."""
    return os.environ.get('BASICSR_DENOISE_SHARED') or os.path.join(REPO, os.pardir, 'shared')


@pytest.fixture
def shared():
    """The shared data folder; skips the test when it is absent."""
    root = shared_root()
    if not os.path.isdir(root):
        pytest.skip(f'shared data folder not found: {root}')
    return root


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests run on a 2-core machine; keep torch to 2 threads."""
    import torch
    torch.set_num_threads(2)
    yield
