"""The one definition of MPI's ``fill`` option block: every key with its type, default, range and doc.

:data:`FIELDS` is read by everything that knows the block: :class:`FillConfig` (the filler's settings,
checked, with ``~`` meaning the default for every key), :data:`FILL_SCHEMA` (the option validation of
option files, presets and checkpoints) and :func:`markdown_table` (``docs/configuration.md``).
"""

import dataclasses
import numbers

from basicsr_denoise.utils.errors import OptionError

BN_MODES = ('train', 'eval')
#: ``fill.autocast`` values; None and ``'fp32'`` both mean float32, ``'auto'`` asks ``hardware.fast_precision``.
AUTOCAST = (None, 'fp32', 'bf16', 'fp16', 'auto')
LARGE_MODES = ('tiles', 'shared')


@dataclasses.dataclass(frozen=True)
class Field:
    """One key of the ``fill`` block.

    ``spec`` is the option validation's type spec; ``check(key, value)`` returns the value to use (already
    of the spec's type, never None) or raises :class:`OptionError`; ``doc`` is one line.
    """
    name: str
    spec: object
    default: object
    check: object
    doc: str


def _int_at_least(low):
    def check(key, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise OptionError(f'{key}: must be an integer >= {low}, got {value!r}')
        return int(value)
    check.range = f'integer >= {low}'
    return check


def _positive(key, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise OptionError(f'{key}: must be a number > 0, got {value!r}')
    return float(value)


_positive.range = 'number > 0'


def _fraction(key, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise OptionError(f'{key}: must be a number in [0, 1], got {value!r}')
    return float(value)


_fraction.range = '[0, 1]'


def _choice(*known):
    def check(key, value):
        if value not in known:
            raise OptionError(f"{key}: must be one of {', '.join(map(str, known))}, got {value!r}")
        return value
    check.range = ' / '.join('~' if k is None else str(k) for k in known)
    return check


def _boolean(key, value):
    if not isinstance(value, bool):
        raise OptionError(f'{key}: must be true or false, got {value!r}')
    return value


_boolean.range = 'true / false'


def _channels_last(key, value):
    if not (isinstance(value, bool) or value == 'auto'):
        raise OptionError(f'{key}: must be true, false or auto, got {value!r}')
    return value


_channels_last.range = 'true / false / auto'


def _any(key, value):
    return value


_any.range = ''


def _ratio(key, value):
    """Checked by :class:`~basicsr_denoise.mpi.masking.MaskSampler` when the filler is built."""
    return (value, value) if isinstance(value, numbers.Real) else tuple(value)


_ratio.range = '0 <= min <= max <= 100'


def _by_area(key, block):
    if not isinstance(block, dict):
        raise OptionError(f'{key}: must be a mapping {{pixels: [A0, A1], iterations: T}}, got {block!r}')
    unknown = sorted(set(block) - {'pixels', 'iterations'})
    if unknown:
        raise OptionError(f'{key}.{unknown[0]}: unknown key (known: pixels, iterations)')
    pixels = block.get('pixels')
    if not (isinstance(pixels, (list, tuple)) and len(pixels) == 2
            and all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in pixels)
            and 0 < pixels[0] < pixels[1]):
        raise OptionError(f'{key}.pixels: must be two increasing pixel counts [A0, A1], got {pixels!r}')
    steps = block.get('iterations')  # ~: the block's own iterations (FillConfig.from_block)
    return {'pixels': (int(pixels[0]), int(pixels[1])),
            'iterations': None if steps is None else _int_at_least(1)(f'{key}.iterations', steps)}


_by_area.range = '{pixels: [A0, A1], iterations: T}'

#: Every key of the ``fill`` block, in the order of the generated docs.
FIELDS = (
    Field('iterations', int, 200, _int_at_least(1), 'Filling steps `T` of one image (the authors: 200 `fast`, '
          '1000 `gauss`).'),
    Field('lr', float, 2e-3, _positive, 'Adam learning rate of the fill.'),
    Field('beta', float, 0.9, _fraction, 'Ensemble weight of the past: `ybar = beta*ybar + (1-beta)*pred` at the '
          'hidden pixels.'),
    Field('mask_ratio', list, (30, 30), _ratio, 'Hidden percent range `[min, max]`, one draw per step.'),
    Field('patch_size', int, 1, _int_at_least(1), 'Side of the square units that are hidden together.'),
    Field('shuffle', int, 1, _int_at_least(1), 'Pixel-unshuffle factor (2 for SIDD: fills the 4 sub-images '
          'as one batch).'),
    Field('bn_mode', str, 'train', _choice(*BN_MODES), "BatchNorm during the fill: `train` (the authors: the "
          "image's own statistics) or `eval`."),
    Field('autocast', str, None, _choice(*AUTOCAST), 'Mixed precision: `bf16`, `fp16`, `fp32`/`~` (float32), '
          '`auto` (bf16 where the device computes it natively).'),
    Field('channels_last', (bool, str), False, _channels_last, 'Channels-last memory format; `auto`: where '
          'bf16 is native.'),
    Field('lr_warmup', int, 0, _int_at_least(0), 'Ramp the lr linearly over the first `W` steps (0: none, the '
          'authors).'),
    Field('complementary', bool, False, _boolean, 'Masks that hide every pixel once per cycle of about '
          '`1/p` steps, instead of independent draws.'),
    Field('by_area', dict, None, _by_area, 'More steps on larger images: `T` up to `A0` pixels, `T1` from `A1`, '
          'interpolated in log(area) between.'),
    Field('tile_size', int, None, _int_at_least(0), 'Fill images larger than this in tiles (`~` or 0: never).'),
    Field('tile_overlap', int, 64, _int_at_least(0), 'Overlap of neighbouring tiles, averaged.'),
    Field('large_mode', str, 'tiles', _choice(*LARGE_MODES), 'Above `tile_size`: `tiles` (each tile filled '
          'from fresh weights, the authors) or `shared` (one adaptation, then forward passes per tile).'),
    Field('adapt_size', int, None, _int_at_least(1), '`shared`: side of the random crops of the adaptation '
          '(`~`: `tile_size`).'),
    Field('adapt_iterations', int, None, _int_at_least(1), '`shared`: steps of the adaptation (`~`: '
          '`iterations`).'),
    Field('tile_passes', int, None, _int_at_least(1), '`shared`: forward-only passes per tile (`~`: 16).'),
    Field('pad_multiple', int, 32, _int_at_least(1), 'Reflect-pad each image to a multiple of this (the '
          'network downsamples 5 times).'),
    Field('seed', int, 0, _any, "Mask seed, mixed with each image's name."),
    Field('progress', bool, True, _boolean, 'Progress bars.'),
)
_BY_NAME = {f.name: f for f in FIELDS}

#: ``fill`` key -> type spec, for :func:`basicsr_denoise.utils.options.validate`.
FILL_SCHEMA = {f.name: f.spec for f in FIELDS}


def _from_block(cls, block=None, source=None):
    """A config from a ``fill`` block: unknown keys are errors, a missing key or ``~`` takes the default.

    Raises:
        OptionError: one line naming ``source`` and the ``fill.<key>`` that is wrong.
    """
    block = dict(block or {})
    where = f'{source}: ' if source else ''
    unknown = sorted(set(block) - set(_BY_NAME), key=str)
    if unknown:
        raise OptionError(f"{where}fill.{unknown[0]}: unknown option key (known here: {', '.join(sorted(_BY_NAME))})")
    values = {}
    for f in FIELDS:
        value = block.get(f.name)
        try:
            values[f.name] = f.default if value is None else f.check(f.name, value)
        except OptionError as exc:
            raise OptionError(f'{where}fill.{exc}') from None
    if values['by_area'] is not None and values['by_area']['iterations'] is None:
        values['by_area'] = {**values['by_area'], 'iterations': values['iterations']}
    return cls(**values)


#: The checked settings of one filler, one attribute per :data:`FIELDS` entry (frozen); build it with
#: ``FillConfig.from_block(block, source)``, vary it with ``config.replace(key=value)``.
FillConfig = dataclasses.make_dataclass(
    'FillConfig', [(f.name, object, dataclasses.field(default=f.default)) for f in FIELDS], frozen=True,
    namespace={'from_block': classmethod(_from_block), 'replace': lambda self, **kw: dataclasses.replace(self, **kw),
               '__module__': __name__})


def _default_text(value):
    if value is None:
        return '~'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return str(list(value))
    return str(value)


def markdown_table():
    """The ``fill`` keys as a Markdown table (key, default, range, meaning), for ``docs/configuration.md``."""
    rows = ['| key | default | values | meaning |', '| --- | --- | --- | --- |']
    for f in FIELDS:
        rows.append(f'| `{f.name}` | `{_default_text(f.default)}` | {getattr(f.check, "range", "")} | {f.doc} |')
    return '\n'.join(rows)
