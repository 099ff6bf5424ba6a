"""Logging: a rank-aware text logger, a training message logger with ETA, TensorBoard."""

import contextlib
import contextvars
import datetime
import logging
import sys
import time

from basicsr_denoise.utils.dist import get_dist_info, master_only

LOGGER_NAME = 'basicsr_denoise'
_initialized = set()


def get_root_logger(log_file=None, log_level=logging.INFO):
    """The package logger. Rank 0 logs at ``log_level`` to stderr (and ``log_file``); others log errors only.

    Args:
        log_file (str | None): Also write the log to this file (rank 0 only). Default: None.
        log_level (int): Level on rank 0. Default: ``logging.INFO``.
    """
    logger = logging.getLogger(LOGGER_NAME)
    rank, _ = get_dist_info()
    fmt = logging.Formatter('%(asctime)s %(levelname)s: %(message)s')
    if LOGGER_NAME not in _initialized:
        _initialized.add(LOGGER_NAME)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(fmt)
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(log_level if rank == 0 else logging.ERROR)
    if log_file is not None and rank == 0 and log_file not in _initialized:
        _initialized.add(log_file)
        for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(old)  # a new job in the same process: its own log file only
            old.close()
        fh = logging.FileHandler(log_file, 'w')
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    return logger


def get_time_str():
    """Local time as ``YYYYmmdd_HHMMSS``."""
    return time.strftime('%Y%m%d_%H%M%S', time.localtime())


def format_seconds(seconds):
    """``3725`` -> ``'1:02:05'``."""
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class MessageLogger:
    """Writes training progress lines with learning rate, losses and ETA (rank 0 only).

    Args:
        opt (dict): Full options (uses ``name``, ``logger.print_freq``, ``train.total_iter``).
        start_iter (int): Iteration the run (re)starts from. Default: 0.
        tb_logger (SummaryWriter | None): Also log scalars to TensorBoard. Default: None.
    """

    def __init__(self, opt, start_iter=0, tb_logger=None):
        self.exp_name = opt['name']
        self.interval = opt['logger']['print_freq']
        self.start_iter = start_iter
        self.max_iters = opt['train']['total_iter']
        self.tb_logger = tb_logger
        self.start_time = time.time()
        self.logger = get_root_logger()

    @master_only
    def __call__(self, log_vars):
        """Log ``{'epoch', 'iter', 'lrs', 'time', 'data_time', <loss names>...}``."""
        log_vars = dict(log_vars)
        epoch, current_iter, lrs = log_vars.pop('epoch'), log_vars.pop('iter'), log_vars.pop('lrs')
        pct = 100.0 * current_iter / max(self.max_iters, 1)
        msg = (f'[{self.exp_name[:16]}][epoch:{epoch:3d}, iter:{current_iter:8,d}/{self.max_iters:,d} ({pct:5.1f}%), '
               'lr:(')
        msg += ','.join(f'{v:.3e}' for v in lrs) + ')] '
        if 'time' in log_vars:
            iter_time, data_time = log_vars.pop('time'), log_vars.pop('data_time')
            elapsed = time.time() - self.start_time
            done = max(current_iter - self.start_iter, 1)
            eta = elapsed / done * (self.max_iters - current_iter)
            msg += f'[eta: {format_seconds(eta)}, time (data): {iter_time:.3f} ({data_time:.3f})] '
        for k, v in log_vars.items():
            msg += f'{k}: {v:.4e} '
            if self.tb_logger is not None:
                self.tb_logger.add_scalar(f'losses/{k}' if k.startswith('l_') else k, v, current_iter)
        self.logger.info(msg)


@master_only
def init_tb_logger(log_dir):
    """A TensorBoard ``SummaryWriter`` writing to ``log_dir`` (rank 0 only); None if tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a runtime dependency, but keep training if it is absent
        get_root_logger().warning('tensorboard is not installed: no TensorBoard logging')
        return None
    return SummaryWriter(log_dir=log_dir)


#: The listener of :func:`progress` bars in this context (thread), set by :func:`progress_listener`.
_LISTENER = contextvars.ContextVar('basicsr_denoise_progress_listener', default=None)


@contextlib.contextmanager
def progress_listener(listener):
    """Report every :func:`progress` bar made inside the block to ``listener(desc, done, total)``.

    The bars still print as usual; the listener is told the count after each item (and each ``update``),
    e.g. to drive a web page's progress bar (:mod:`basicsr_denoise.app`). It holds for the current thread
    (a ``ContextVar``), so concurrent requests each see their own.
    """
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


class _ReportedBar:
    """A tqdm bar that also tells a listener its count."""

    def __init__(self, bar, listener, desc, total):
        self._bar, self._listener, self._desc, self._done = bar, listener, desc, 0
        self._total = total if total is not None else getattr(bar, 'total', None)

    def _report(self):
        self._listener(self._desc, self._done, self._total)

    def __iter__(self):
        for item in self._bar:
            yield item
            self._done += 1
            self._report()

    def __len__(self):
        return len(self._bar)

    def update(self, n=1):
        self._done += n
        self._bar.update(n)
        self._report()

    def __getattr__(self, name):
        return getattr(self._bar, name)


def progress(iterable=None, total=None, desc=None, unit='it', disable=None, leave=False):
    """A tqdm progress bar on rank 0 (disabled on other ranks and when stderr is not a terminal), also
    reported to the :func:`progress_listener` of the context when one is set."""
    from tqdm import tqdm
    if disable is None:
        disable = get_dist_info()[0] != 0 or not sys.stderr.isatty()
    bar = tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, leave=leave, dynamic_ncols=True)
    listener = _LISTENER.get()
    if listener is None:
        return bar
    if total is None and iterable is not None and hasattr(iterable, '__len__'):
        total = len(iterable)
    return _ReportedBar(bar, listener, desc, total)
