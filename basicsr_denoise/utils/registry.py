"""Name-to-class registries with lazy, fault-tolerant discovery.

Six registries map the ``type:`` strings of option files to classes:
``ARCH_REGISTRY`` (``archs/*_arch.py``), ``MODEL_REGISTRY`` (``models/*_model.py``),
``LOSS_REGISTRY`` (``losses/*_loss.py``), ``DATASET_REGISTRY`` (``data/*_dataset.py``),
``METRIC_REGISTRY`` (``metrics/*.py``) and ``NOISE_REGISTRY`` (``noise/*.py``).

A class joins a registry with a decorator::

    @ARCH_REGISTRY.register()
    class MyNet(nn.Module): ...

Discovery happens on the first lookup, not on ``import basicsr_denoise``: the
registry imports every module of its package whose file name ends with its suffix.
A module that fails to import is skipped with a warning naming it, so one broken
optional plugin never breaks the package (unlike BasicSR issue #649). Extra plugin
modules can be named explicitly with :func:`import_plugins` (option key
``plugins``) or the ``BASICSR_DENOISE_PLUGINS`` environment variable
(comma-separated module names).
"""

import importlib
import inspect
import os
import pkgutil
import warnings

from basicsr_denoise.utils.errors import OptionError


class Registry:
    """A registry of named classes or functions.

    Args:
        name (str): Human-readable name, e.g. ``'arch'``.
        package (str | None): Package searched on first lookup. Default: None.
        suffix (str): Only modules whose name ends with it are imported. Default: ''.
    """

    def __init__(self, name, package=None, suffix=''):
        self._name = name
        self._package = package
        self._suffix = suffix
        self._obj_map = {}
        self._discovered = package is None
        self.failed_modules = {}

    def register(self, obj=None, name=None):
        """Register ``obj`` under ``name`` (default: ``obj.__name__``).

        Usable as ``@REG.register()``, ``@REG.register(name='x')`` or ``REG.register(obj)``.

        Raises:
            KeyError: if the name is taken already.
        """

        def _do(o):
            key = name or o.__name__
            if key in self._obj_map and self._obj_map[key] is not o:
                prev = self._obj_map[key]
                raise KeyError(f"{self._name} registry: '{key}' is registered twice "
                               f'({prev.__module__}.{prev.__qualname__} and {o.__module__}.{o.__qualname__})')
            self._obj_map[key] = o
            return o

        if obj is None:
            return _do
        return _do(obj)

    def _discover(self):
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self._package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if info.name.startswith('_') or not info.name.endswith(self._suffix):
                continue
            modname = f'{self._package}.{info.name}'
            try:
                importlib.import_module(modname)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the package
                self.failed_modules[modname] = f'{type(exc).__name__}: {exc}'
                warnings.warn(f'basicsr_denoise: skipped module {modname} ({type(exc).__name__}: {exc})', stacklevel=2)
        import_plugins(os.environ.get('BASICSR_DENOISE_PLUGINS', ''))

    def keys(self):
        """Sorted registered names (after discovery)."""
        self._discover()
        return sorted(self._obj_map)

    def __contains__(self, name):
        self._discover()
        return name in self._obj_map

    def __iter__(self):
        return iter(self.keys())

    def get(self, name, key=None, source=None):
        """Return the object registered as ``name``.

        Args:
            name (str): The registered name (an option file's ``type``).
            key (str | None): Option key that asked for it, for the error message.
            source (str | None): Option file that asked for it, for the error message.

        Raises:
            OptionError: naming the type, the key and the file, and listing the known names.
        """
        self._discover()
        if name in self._obj_map:
            return self._obj_map[name]
        where = ''.join([f'{source}: ' if source else '', f'{key}: ' if key else ''])
        msg = f"{where}unknown {self._name} type '{name}'; known: {', '.join(sorted(self._obj_map)) or 'none'}"
        if self.failed_modules:
            msg += f" (modules that failed to import: {', '.join(sorted(self.failed_modules))})"
        raise OptionError(msg)

    def build(self, opt, key=None, source=None, **extra):
        """Build ``REG.get(opt['type'])(**rest_of_opt, **extra)`` with checked keywords.

        Args:
            opt (dict): Option block with a ``type`` entry; other entries are keyword arguments.
            key (str | None): Where the block sits in the option file (e.g. ``'network_g'``).
            source (str | None): The option file, for error messages.
            **extra: Keyword arguments supplied by the code, not by the option file.
        """
        if not isinstance(opt, dict) or 'type' not in opt:
            raise OptionError(f"{source + ': ' if source else ''}{key or 'block'}: needs a 'type' entry")
        kwargs = {k: v for k, v in opt.items() if k != 'type'}
        cls = self.get(opt['type'], key=key, source=source)
        check_kwargs(cls, kwargs, key=key, source=source)
        for n in required_kwargs(cls):  # a required keyword nobody gives: one line, not a TypeError
            if n not in kwargs and n not in extra:
                where = ''.join([f'{source}: ' if source else '', f'{key}.' if key else ''])
                raise OptionError(f'{where}{n}: required by {opt["type"]}, missing')
        try:
            return cls(**kwargs, **extra)
        except OptionError as exc:  # say which block of which file the class complained about
            where = ''.join([f'{source}: ' if source else '', f'{key}: ' if key else ''])
            msg = str(exc)
            raise OptionError(msg if (source and msg.startswith(source)) else f'{where}{msg}') from None


def accepted_kwargs(fn):
    """Names accepted by ``fn`` (a class or a function), or None if it takes ``**kwargs``."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return [n for n, p in params.items() if n != 'self' and p.kind is not inspect.Parameter.VAR_POSITIONAL]


def required_kwargs(fn):
    """Names ``fn`` (a class or a function) requires: no default, passable by keyword."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [n for n, p in inspect.signature(target).parameters.items()
            if n != 'self' and p.default is inspect.Parameter.empty and p.kind in kinds]


def check_kwargs(fn, kwargs, key=None, source=None):
    """Raise an :class:`OptionError` naming the first keyword ``fn`` does not accept."""
    names = accepted_kwargs(fn)
    if names is None:
        return
    for k in kwargs:
        if k not in names:
            where = ''.join([f'{source}: ' if source else '', f'{key}.' if key else ''])
            raise OptionError(f"{where}{k}: unknown option key for {fn.__name__} (accepted: {', '.join(names)})")


def import_plugins(modules):
    """Import user plugin modules (a list or a comma-separated string) so their classes register."""
    if isinstance(modules, str):
        modules = [m.strip() for m in modules.split(',') if m.strip()]
    for m in modules or []:
        try:
            importlib.import_module(m)
        except Exception as exc:  # noqa: BLE001
            raise OptionError(f"plugins: cannot import module '{m}' ({type(exc).__name__}: {exc})") from exc


ARCH_REGISTRY = Registry('arch', 'basicsr_denoise.archs', '_arch')
MODEL_REGISTRY = Registry('model', 'basicsr_denoise.models', '_model')
LOSS_REGISTRY = Registry('loss', 'basicsr_denoise.losses', '_loss')
DATASET_REGISTRY = Registry('dataset', 'basicsr_denoise.data', '_dataset')
METRIC_REGISTRY = Registry('metric', 'basicsr_denoise.metrics')
NOISE_REGISTRY = Registry('noise', 'basicsr_denoise.noise')


def lazy_getattr(package, names):
    """A module ``__getattr__`` that imports ``package.<names[attr]>`` on first use of ``attr`` (PEP 562).

    A package exposes its classes by name without importing every module up front, so one broken
    module only breaks the names it defines.
    """

    def __getattr__(attr):
        if attr in names:
            return getattr(importlib.import_module(f'{package}.{names[attr]}'), attr)
        raise AttributeError(f"module '{package}' has no attribute '{attr}'")

    return __getattr__
