"""Network architectures (``*_arch.py``), found through ``ARCH_REGISTRY``.

Importing this package is cheap: it imports no architecture module (and not torch).
The registry imports every ``*_arch.py`` module on its first lookup; a module that
fails to import is skipped with a warning that names it.

Registered names: ``SkipNet`` (DIP skip, MPI's default), ``DnCNN``, ``DIPResNet``,
``MaskedNet`` (MPI's masked-input wrapper around any of them) and ``N2NUNet``
(Noise2Noise U-Net used by Noise2Score).
"""

from basicsr_denoise.utils.registry import ARCH_REGISTRY

__all__ = ['build_network', 'ARCH_REGISTRY']


def build_network(opt, key='network_g', source=None):
    """Build a network from its option block.

    Args:
        opt (dict): The block (``{'type': 'MaskedNet', ...}``) or a whole option dict
            holding the block under ``key``.
        key (str): Option key of the block, used to find it in a whole option dict and
            in error messages. Default: ``'network_g'``.
        source (str | None): Option file, for error messages. Default: None.

    Returns:
        nn.Module: The network, on the CPU, in training mode.

    Raises:
        OptionError: unknown ``type`` or unknown keyword, naming the file and the key.
    """
    if isinstance(opt, dict) and 'type' not in opt and isinstance(opt.get(key), dict):
        opt = opt[key]
    return ARCH_REGISTRY.build(opt, key=key, source=source)
