"""The package's import graph, read with ``ast`` (module- and function-level imports alike): no circles, and
no arrow from ``utils`` into a method package."""

import ast
import os

from _framework import REPO

PACKAGE = 'basicsr_denoise'
#: Packages that ``utils`` may not import: the methods and everything built on them.
METHOD_PACKAGES = ('archs', 'data', 'losses', 'metrics', 'models', 'mpi', 'noise', 'presets', 'weights', 'inference',
                   'checkpoint', 'cli', 'train', 'test', 'app')


def _modules():
    root = os.path.join(REPO, PACKAGE)
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith('.py'):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, '.')
                yield (rel[:-len('.__init__')] if rel.endswith('.__init__') else rel), path, f == '__init__.py'


def import_graph():
    """``{module: {imported package module, ...}}`` for every module of the package."""
    mods = {name: (path, is_pkg) for name, path, is_pkg in _modules()}
    graph = {}
    for name, (path, is_pkg) in mods.items():
        tree = ast.parse(open(path, encoding='utf-8').read(), path)
        here = name if is_pkg else name.rsplit('.', 1)[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    parts = here.split('.')
                    base = '.'.join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                targets.add(base)
                targets.update(f'{base}.{a.name}' for a in node.names)
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def _cycle(graph):
    """One import circle as a list of modules, or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert len(graph) > 40 and 'basicsr_denoise.inference' in graph['basicsr_denoise.cli']
    # a package's __init__ importing its own submodules is not a circle of the layering
    inner = {m: {t for t in ts if not (m.startswith(t + '.'))} for m, ts in graph.items()}
    cycle = _cycle(inner)
    assert cycle is None, 'import circle: ' + ' -> '.join(cycle)


def test_utils_imports_no_method_package():
    graph = import_graph()
    bad = sorted((m, t) for m, ts in graph.items() if m.startswith(f'{PACKAGE}.utils') for t in ts
                 if t.split('.')[1] in METHOD_PACKAGES)
    assert not bad, 'arrows from utils into method packages: ' + ', '.join(f'{m} -> {t}' for m, t in bad)


def test_the_graph_reader_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / PACKAGE
    (pkg / 'utils').mkdir(parents=True)
    (pkg / '__init__.py').write_text('')
    (pkg / 'utils' / '__init__.py').write_text('')
    (pkg / 'utils' / 'a.py').write_text('def f():\n    from basicsr_denoise.models import m\n')
    (pkg / 'models').mkdir()
    (pkg / 'models' / '__init__.py').write_text('from . import m\n')
    (pkg / 'models' / 'm.py').write_text('from ..utils.a import f\n')
    import test_layering
    monkeypatch.setattr(test_layering, 'REPO', str(tmp_path))
    graph = import_graph()
    assert graph[f'{PACKAGE}.utils.a'] == {f'{PACKAGE}.models', f'{PACKAGE}.models.m'}
    assert f'{PACKAGE}.utils.a' in graph[f'{PACKAGE}.models.m']
    assert _cycle({k: {t for t in v if not k.startswith(t + '.')} for k, v in graph.items()})
