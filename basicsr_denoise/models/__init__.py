"""Model classes (``*_model.py``), registered in ``MODEL_REGISTRY`` and built from ``model_type``."""

from basicsr_denoise.utils.registry import MODEL_REGISTRY


def build_model(opt):
    """Build the model named by ``opt['model_type']`` from the full option dict."""
    cls = MODEL_REGISTRY.get(opt['model_type'], key='model_type', source=opt.get('opt_path'))
    model = cls(opt)
    model.logger.info(f'Model [{cls.__name__}] is created.')
    return model


__all__ = ['build_model']
