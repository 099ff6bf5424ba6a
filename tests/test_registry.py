"""Registries: decorator registration, duplicate names, unknown types, lazy fault-tolerant discovery."""

import subprocess
import sys
import types

import pytest

from basicsr_denoise.utils.errors import OptionError
from basicsr_denoise.utils.registry import ARCH_REGISTRY, Registry, check_kwargs

from _framework import REPO  # noqa: E402


def test_register_and_get():
    reg = Registry('thing')

    @reg.register()
    class Foo:
        pass

    @reg.register(name='bar')
    def make_bar():
        return 1

    assert reg.get('Foo') is Foo
    assert reg.get('bar') is make_bar
    assert reg.keys() == ['Foo', 'bar'] and 'Foo' in reg


def test_duplicate_name_is_an_error():
    reg = Registry('thing')

    @reg.register()
    class Foo:
        pass

    with pytest.raises(KeyError, match="'Foo' is registered twice"):

        @reg.register(name='Foo')
        class Other:
            pass


def test_unknown_type_names_key_file_and_known_names():
    reg = Registry('arch')
    reg.register(type('NetA', (), {}))
    with pytest.raises(OptionError) as err:
        reg.get('NetB', key='network_g.type', source='opt.yml')
    msg = str(err.value)
    assert '\n' not in msg
    assert "opt.yml: network_g.type: unknown arch type 'NetB'" in msg and 'known: NetA' in msg


def test_build_checks_keyword_arguments():
    reg = Registry('arch')

    @reg.register()
    class Net:
        def __init__(self, num_feat=4):
            self.num_feat = num_feat

    assert reg.build({'type': 'Net', 'num_feat': 8}).num_feat == 8
    with pytest.raises(OptionError, match=r'opt.yml: network_g.num_feats: unknown option key for Net'):
        reg.build({'type': 'Net', 'num_feats': 8}, key='network_g', source='opt.yml')
    with pytest.raises(OptionError, match="needs a 'type'"):
        reg.build({'num_feat': 8}, key='network_g')
    check_kwargs(lambda **kw: None, {'anything': 1})  # **kwargs accepts all

    @reg.register()
    class Needs:
        def __init__(self, level, data, scale=1):
            self.level, self.data = level, data

    with pytest.raises(OptionError, match=r'^opt.yml: noise.level: required by Needs, missing$'):
        reg.build({'type': 'Needs'}, key='noise', source='opt.yml', data=1)
    assert reg.build({'type': 'Needs', 'level': 2}, data=3).data == 3  # given by the code: not missing


@pytest.mark.slow  # a subprocess
def test_real_registries_discover_lazily():
    # a fresh interpreter: importing the package imports no arch module
    code = ('import sys, basicsr_denoise; '
            'print(any(m.startswith("basicsr_denoise.archs.") for m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'
    assert 'SkipNet' in ARCH_REGISTRY.keys() or len(ARCH_REGISTRY.keys()) > 0


def test_broken_plugin_module_does_not_break_discovery(monkeypatch, tmp_path):
    pkg = tmp_path / 'fakepkg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'good_arch.py').write_text(
        'from basicsr_denoise.utils.registry import Registry\n'
        'import fakepkg\n'
        'fakepkg.REG.register(type("GoodNet", (), {}))\n')
    (pkg / 'broken_arch.py').write_text('import a_module_that_does_not_exist\n')
    (pkg / 'notes.py').write_text('raise RuntimeError("not an arch file, never imported")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    fakepkg = importlib.import_module('fakepkg')
    fakepkg.REG = Registry('arch', 'fakepkg', '_arch')
    with pytest.warns(UserWarning, match='skipped module fakepkg.broken_arch'):
        keys = fakepkg.REG.keys()
    assert keys == ['GoodNet']
    with pytest.raises(OptionError, match='modules that failed to import: fakepkg.broken_arch'):
        fakepkg.REG.get('BrokenNet')


def test_plugins_environment_variable(monkeypatch, tmp_path):
    (tmp_path / 'env_plugin_mod.py').write_text(
        'from basicsr_denoise.utils.registry import Registry\nREG = None\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    from basicsr_denoise.utils.registry import import_plugins
    import_plugins('env_plugin_mod')
    assert 'env_plugin_mod' in sys.modules
    with pytest.raises(OptionError, match="plugins: cannot import module 'no_such_plugin_xyz'"):
        import_plugins(['no_such_plugin_xyz'])
    assert isinstance(sys.modules['env_plugin_mod'], types.ModuleType)
