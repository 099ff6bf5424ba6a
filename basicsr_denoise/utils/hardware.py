"""What the hardware computes fast: the precision that ``autocast: auto`` / ``channels_last: auto`` resolve to."""

import functools

import torch


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16():
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), so bf16 autocast is faster than float32.

    Uses torch's own CPU probes (``torch.cpu._is_avx512_bf16_supported``, ``torch.cpu._is_amx_tile_supported``,
    private, looked up with ``getattr`` so that a torch without them answers False) and needs
    ``torch.backends.cpu.get_cpu_capability()`` to report an AVX-512 level (a build or an environment
    that caps the kernels at AVX2 runs bf16 emulated, slower than float32).
    """
    get_cap = getattr(getattr(torch.backends, 'cpu', None), 'get_cpu_capability', None)
    try:
        capability = str(get_cap()) if get_cap else ''
    except Exception:  # noqa: BLE001 (a probe must never break filling)
        capability = ''
    if capability and not capability.upper().startswith('AVX512'):
        return False
    for probe in ('_is_avx512_bf16_supported', '_is_amx_tile_supported'):
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # noqa: BLE001
            continue
    return False


def fast_precision(device):
    """The fastest precision that keeps MPI filling's quality on ``device``.

    CPU: bf16 autocast and channels-last memory when the CPU has native bf16 (:func:`cpu_has_native_bf16`);
    CUDA: bf16 and channels-last when ``torch.cuda.is_bf16_supported()``; anything else (MPS, older
    GPUs and CPUs): float32 in the default memory format.

    Args:
        device (torch.device | str): Where the filling runs.

    Returns:
        tuple[str | None, bool]: The ``autocast`` value (``'bf16'``, or None for float32) and ``channels_last``.
    """
    kind = torch.device(device).type
    if kind == 'cpu' and cpu_has_native_bf16():
        return 'bf16', True
    if kind == 'cuda':
        try:
            if torch.cuda.is_bf16_supported():
                return 'bf16', True
        except Exception:  # noqa: BLE001 (no usable CUDA: fall back to float32)
            pass
    return None, False


__all__ = ['cpu_has_native_bf16', 'fast_precision']
