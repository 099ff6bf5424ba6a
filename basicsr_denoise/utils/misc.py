"""Small helpers: seeding, RNG state capture, experiment folders, resume-state lookup."""

import glob
import os
import random
import re
import shutil

import numpy as np
import torch

from basicsr_denoise.utils.dist import master_only
from basicsr_denoise.utils.logger import get_time_str


def set_random_seed(seed):
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def get_rng_state():
    """Capture Python, NumPy and torch RNG states as plain containers and tensors.

    The result loads with ``torch.load(weights_only=True)`` (no NumPy objects inside).
    """
    np_state = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what :func:`get_rng_state` captured."""
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class preserve_rng:
    """Context manager: code inside it leaves Python, NumPy and torch RNG states unchanged.

    Validation runs inside it, so a run with validation resumes bit-exactly.
    """

    def __enter__(self):
        self._state = get_rng_state()
        return self

    def __exit__(self, *exc):
        set_rng_state(self._state)
        return False


@master_only
def mkdir_and_rename(path):
    """Create ``path``; an existing folder is first renamed to ``<path>_archived_<time>``, never overwritten."""
    if os.path.exists(path):
        new_name = f'{path}_archived_{get_time_str()}'
        n = 1
        while os.path.exists(new_name):
            new_name = f'{path}_archived_{get_time_str()}_{n}'
            n += 1
        print(f'Path already exists. Rename it to {new_name}', flush=True)
        shutil.move(path, new_name)
    os.makedirs(path, exist_ok=True)


def state_iter(path):
    """Iteration number of a ``training_states/<iter>.state`` file name, or -1."""
    m = re.match(r'^(\d+)\.state$', os.path.basename(path))
    return int(m.group(1)) if m else -1


def find_latest_state(state_folder):
    """Path of the newest ``<iter>.state`` in ``state_folder``, or None."""
    states = [p for p in glob.glob(os.path.join(state_folder, '*.state')) if state_iter(p) >= 0]
    if not states:
        return None
    return max(states, key=state_iter)


def sizeof_fmt(size):
    """Human-readable byte count."""
    for unit in ['B', 'KB', 'MB', 'GB', 'TB']:
        if abs(size) < 1024.0:
            return f'{size:3.1f} {unit}'
        size /= 1024.0
    return f'{size:3.1f} PB'
