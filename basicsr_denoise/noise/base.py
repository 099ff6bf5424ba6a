"""Base class of the noise families: sampling, noise level, and (where it exists) Tweedie's formula."""

import copy
import numbers

import torch

from basicsr_denoise.utils.errors import OptionError


class NoiseModel:
    """A noise family with one named level parameter.

    Subclasses declare their numeric parameters in :attr:`limits`, pass them to this constructor and
    implement :meth:`_sample`; those for which Noise2Score's
    Tweedie formula exists also implement :meth:`tweedie`, :meth:`network_input`, :meth:`grid`
    and :meth:`ardae_scale`. Register a subclass with ``@NOISE_REGISTRY.register()``; build one with
    :func:`basicsr_denoise.noise.build_noise`.

    Args:
        clip (bool): Clip the noisy image to [0, 1]. Default: False (as both papers: float, unclipped).
        quantize (bool): Quantise the noisy image to steps of 1/255 (after clipping, if any),
            for realism. Default: False.
        **params: The family's numeric parameters (its level and any others), checked against
            :attr:`limits`.
    """

    #: Name of the constructor argument that holds the noise level (``'sigma'``, ``'eta'``, ``'k'``, ...).
    param_name = None
    #: Whether :meth:`tweedie` is defined for this family.
    has_tweedie = False
    #: The numeric parameters and their checks (keyword arguments of :meth:`_number`), e.g.
    #: ``{'sigma': {}}`` for ``sigma > 0`` or ``{'amount': {'maximum': 1.0}}``.
    limits = {}
    #: The levels of the blind search (:meth:`grid`); None where the family has none.
    grid_levels = None

    def __init__(self, clip=False, quantize=False, **params):
        self.clip = bool(clip)
        self.quantize = bool(quantize)
        for name, value in params.items():
            setattr(self, name, value)
        self._validate()

    # ----------------------------------------------------------------- level
    @property
    def name(self):
        """The registered name (the class name)."""
        return type(self).__name__

    @property
    def param(self):
        """The current noise level (value of :attr:`param_name`)."""
        return getattr(self, self.param_name)

    def with_param(self, value):
        """Return a copy of this noise model with the level :attr:`param_name` set to ``value``."""
        new = copy.copy(self)
        setattr(new, self.param_name, value)
        new._validate()
        return new

    def grid(self):
        """The noise levels of the authors' blind search (list of floats, on the :attr:`param` scale):
        the class's :attr:`grid_levels`.

        Raises:
            OptionError: if no blind-search grid is defined for this family.
        """
        if self.grid_levels is None:
            raise OptionError(f'{self.name}: no blind-search grid is defined for this noise family')
        return list(self.grid_levels)

    def _validate(self):
        """Check the parameters of :attr:`limits` and make them floats (constructor and :meth:`with_param`)."""
        for name, limit in self.limits.items():
            setattr(self, name, self._number(name, getattr(self, name), **limit))

    def _number(self, name, value, minimum=0.0, strict=True, maximum=None):
        """Return ``float(value)`` after checking ``value > minimum`` (``>=`` if not strict) and ``<= maximum``."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise OptionError(f'{self.name}: {name} must be a number, got {value!r}')
        value = float(value)
        if value != value or (strict and value <= minimum) or (not strict and value < minimum):
            raise OptionError(f"{self.name}: {name} must be {'>' if strict else '>='} {minimum:g}, got {value:g}")
        if maximum is not None and value > maximum:
            raise OptionError(f'{self.name}: {name} must be <= {maximum:g}, got {value:g}')
        return value

    def __repr__(self):
        return f'{self.name}({self.param_name}={self.param:g}, clip={self.clip}, quantize={self.quantize})'

    # ---------------------------------------------------------------- sample
    def sample(self, x, generator=None):
        """Draw a noisy observation of ``x``.

        Args:
            x (Tensor): Clean image, (C, H, W) or (B, C, H, W) (any shape works: the noise is
                drawn per element), float in [0, 1].
            generator (torch.Generator | None): Generator on ``x.device``; every random number
                is drawn from it, on ``x.device``. None: torch's global generator. Default: None.

        Returns:
            Tensor: Noisy image ``y``, same shape, dtype and device as ``x``; float, unclipped and
            unquantised unless the model was built with ``clip``/``quantize``.
        """
        if not torch.is_tensor(x) or not x.is_floating_point():
            raise TypeError(f'{self.name}.sample: x must be a floating-point torch tensor, got '
                            f"{type(x).__name__}{'' if not torch.is_tensor(x) else ' of ' + str(x.dtype)}")
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        y = self._sample(work, generator)
        if self.clip:
            y = y.clamp(0.0, 1.0)
        if self.quantize:
            y = torch.round(y * 255.0) / 255.0
        return y.to(x.dtype)

    def _sample(self, x, generator):
        """Draw ``y`` given ``x`` (float32/float64). Implemented by subclasses."""
        raise NotImplementedError

    @staticmethod
    def _randn(x, generator):
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    @staticmethod
    def _rand(x, generator):
        return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)

    # --------------------------------------------------------------- Tweedie
    def network_input(self, y):
        """What the score network sees for a noisy image ``y`` (identity except for Poisson)."""
        return y

    def tweedie(self, y, score):
        """Noise2Score's denoised estimate from the noisy image and the score network's output.

        Args:
            y (Tensor): Noisy image, (B, C, H, W), float.
            score (Tensor): ``R(network_input(y))``, same shape as ``y``.

        Returns:
            Tensor: The estimate ``xhat``, same shape as ``y``.

        Raises:
            OptionError: if no Tweedie formula is defined for this family.
        """
        raise OptionError(f"{self.name}: Tweedie's formula is not defined for this noise family "
                          '(Noise2Score supports Gaussian, Poisson and Gamma)')

    def ardae_scale(self):
        """Default AR-DAE annealing ``(sigma_max, sigma_min)`` on the :meth:`network_input` scale.

        Raises:
            OptionError: if no Tweedie formula (hence no Noise2Score training) is defined for this family.
        """
        raise OptionError(f'{self.name}: no AR-DAE defaults, as no Tweedie formula is defined for this noise family')
