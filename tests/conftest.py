"""Shared pytest fixtures, and the events that the subprocess tests synchronise on (never the clock)."""

import itertools
import os
import subprocess
import sys
import time

import pytest

#: A tiny masked network, for tests that need real MPI weights fast (the ``weights`` fixture).
TINY = {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel',
        'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 3}}
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
HANG_S = 600  # waits on an event fail after this long: only a hang gets there, never a slow machine

GATE_SRC = '''\
"""Run a script or a module as python would, and stop it for good at one ``os.replace``.

Usage: python gate.py NAME before|after MARKER (SCRIPT | -m MODULE) [ARG...]. At the rename onto a file called
NAME (``before``: the temporary file is complete but not renamed yet; ``after``: renamed) the process creates
MARKER and waits there until it is killed.
"""
import os
import runpy
import sys
import threading

name, when, marker = sys.argv[1:4]
rest = sys.argv[4:]
_replace = os.replace


def _stop():
    with open(marker, 'w'):
        pass
    threading.Event().wait()


def _gated_replace(src, dst, *args, **kwargs):
    hit = os.path.basename(os.fspath(dst)) == name
    if hit and when == 'before':
        _stop()
    _replace(src, dst, *args, **kwargs)
    if hit:
        _stop()


os.replace = _gated_replace
if rest[0] == '-m':
    sys.argv = rest[1:]
    runpy.run_module(rest[1], run_name='__main__', alter_sys=True)
else:
    sys.argv = rest
    runpy.run_path(rest[0], run_name='__main__')
'''


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


def _wait_for(ready, proc, what, limit=HANG_S):
    """Poll ``ready()`` until it is true. Fails at once when ``proc`` exits first, and after ``limit`` s (a hang).

    The polls wait on ``proc`` itself, so an exit ends the wait at once; no outcome depends on how fast it runs.
    """
    deadline = time.monotonic() + limit
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f'{what}: still not after {limit} s, the process hangs')
        try:
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            continue
        if not ready():
            raise AssertionError(f'{what}: the process exited with status {proc.returncode} first')


@pytest.fixture
def wait_for():
    """``wait_for(ready, proc, what)``: wait for an event (a file written, a worker started) of a running process."""
    return _wait_for


@pytest.fixture
def run_until(tmp_path):
    """``run_until(name, when, cmd, **popen_kwargs)``: start ``cmd`` and return its ``Popen`` once it stopped for good.

    ``cmd`` is ``[python, SCRIPT | -m MODULE, ARG...]``. The process runs unchanged up to its ``os.replace`` onto a
    file called ``name`` (the atomic writes of checkpoints, images and ``metrics.json``) and waits there, ``when``
    ``'before'`` or ``'after'`` the rename, for the test to kill it: a deterministic moment to SIGKILL at. Its
    output goes to files in ``tmp_path/gate`` unless ``stdout``/``stderr`` are given; the stderr tail is shown when
    it exits without reaching the rename. Processes still running at teardown are killed.
    """
    folder = tmp_path / 'gate'
    folder.mkdir()
    script = folder / 'gate.py'
    script.write_text(GATE_SRC)
    started, count = [], itertools.count()

    def run(name, when, cmd, **popen_kwargs):
        assert when in ('before', 'after') and cmd[0] == sys.executable, (when, cmd)
        n = next(count)
        marker = folder / f'stopped{n}'
        err = folder / f'stderr{n}.txt'
        popen_kwargs.setdefault('stdout', subprocess.DEVNULL)
        with open(err, 'w') as err_file:
            popen_kwargs.setdefault('stderr', err_file)
            proc = subprocess.Popen([cmd[0], str(script), name, when, str(marker), *cmd[1:]], **popen_kwargs)
        started.append(proc)
        try:
            _wait_for(marker.exists, proc, f'stop {when} the rename onto {name}')
        except AssertionError as exc:
            raise AssertionError(f'{exc}\n{err.read_text()[-3000:]}') from None
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def weights(tmp_path):
    """A self-describing checkpoint of :data:`TINY` (seed 0), as tools/ship_checkpoint.py writes one."""
    import torch

    from basicsr_denoise.archs import build_network
    from basicsr_denoise.checkpoint import export_checkpoint
    torch.manual_seed(0)
    raw = tmp_path / 'raw.pth'
    torch.save({'params': build_network(TINY).state_dict()}, raw)
    path = tmp_path / 'tiny.pth'
    export_checkpoint(str(raw), str(path), network_g=TINY, fill={'pad_multiple': 1, 'progress': False})
    return str(path)
