"""The model zoo of third-party weights (basicsr_denoise/weights/zoo.py): ``basicsr-denoise weights list`` and
``weights fetch NAME`` against a local HTTP server on 127.0.0.1 (a good file, a tampered one, a download cut in
the middle and resumed, no server), and ``--weights NAME`` after a fetch. Nothing here reaches the network."""

import hashlib
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

import basicsr_denoise.weights as weights
from basicsr_denoise import cli
from basicsr_denoise.archs import build_network
from basicsr_denoise.checkpoint import load_network, load_weights
from basicsr_denoise.inference import MPIDenoiser
from basicsr_denoise.utils.errors import CheckpointError
from basicsr_denoise.weights import zoo

COMMIT = '944895c783780f0b5a8150ccaf73d3ff2c31a54d'
AUTHORS = ('imgnet_30_multchannel_skip', 'imgnet_80_95_singlechannel_skip', 'imgnet_30_multchannel_dncnn',
           'imgnet_30_multchannel_resnet')
#: The small architecture of the synthetic third-party checkpoint (the preset ``fast`` builds a SkipNet).
TINY = {'type': 'MaskedNet', 'in_ch': 3, 'mask_mode': 'multchannel',
        'backbone': {'type': 'DnCNN', 'num_feat': 8, 'num_layers': 3}}
SIZE = 200_000  # more than three of the client's 64 KiB reads


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.root``; honours ``Range: bytes=N-`` (206); the next ``server.cuts`` entry, if any, cuts
    the body after that many bytes and closes the connection."""

    def do_GET(self):
        srv = self.server
        rng = self.headers.get('Range')
        srv.requests.append((self.path, rng))
        path = os.path.join(srv.root, self.path.lstrip('/'))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = open(path, 'rb').read()
        start = 0
        if rng:
            m = re.fullmatch(r'bytes=(\d+)-', rng)
            start = int(m.group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        cut = srv.cuts.pop(0) if srv.cuts else None
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / 'srv'
    root.mkdir()
    httpd = ThreadingHTTPServer(('127.0.0.1', 0), RangeHandler)
    httpd.root, httpd.requests, httpd.cuts = str(root), [], []
    httpd.url = f'http://127.0.0.1:{httpd.server_address[1]}/ckpts'
    (root / 'ckpts').mkdir()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def home(tmp_path, monkeypatch, server):
    """An empty cache, the zoo's files served by ``server``, no proxy."""
    monkeypatch.setenv('BASICSR_DENOISE_HOME', str(tmp_path / 'home'))
    monkeypatch.setenv('BASICSR_DENOISE_ZOO_URL', server.url)
    for var in ('http_proxy', 'HTTP_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')
    return tmp_path / 'home' / 'weights'


def _serve(server, name, data):
    with open(os.path.join(server.root, 'ckpts', name), 'wb') as f:
        f.write(data)


@pytest.fixture
def synthetic(server, monkeypatch):
    """A zoo of one synthetic file ``synth.pth`` (random bytes, its sha256 computed here), served by ``server``."""
    data = os.urandom(SIZE)
    entries = {'synth.pth': {'origin': 'test', 'url': 'https://example.invalid/synth.pth',
                             'sha256': hashlib.sha256(data).hexdigest(), 'size': SIZE, 'licence': 'test only',
                             'pretrained_with': '-', 'network_g': TINY}}
    monkeypatch.setattr(zoo, 'zoo', lambda: entries)
    _serve(server, 'synth.pth', data)
    return data


@pytest.fixture
def tiny_author(server, tmp_path, monkeypatch):
    """A tiny third-party-style checkpoint (``{'params'}`` only, no network_g) registered as ``tiny_author``."""
    torch.manual_seed(0)
    net = build_network(TINY)
    src = tmp_path / 'tiny_author.pth'
    torch.save({'params': net.state_dict()}, src)
    data = src.read_bytes()
    entries = {**zoo.zoo(), 'tiny_author.pth': {
        'origin': 'test', 'url': 'https://example.invalid/tiny_author.pth', 'sha256': hashlib.sha256(data).hexdigest(),
        'size': len(data), 'licence': 'test only', 'pretrained_with': '-', 'network_g': TINY}}
    monkeypatch.setattr(zoo, 'zoo', lambda: entries)
    _serve(server, 'tiny_author.pth', data)
    return net


def _closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _main(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


# ------------------------------------------------------------------------------ the registry
def test_zoo_lists_the_authors_four_files_at_the_snapshot_commit():
    entries = zoo.zoo()
    assert [zoo.stem(n) for n in entries] == list(AUTHORS)
    for name, e in entries.items():
        assert e['url'] == f'https://github.com/krennic999/MPI/raw/{COMMIT}/ckpts/{name}'
        assert re.fullmatch(r'[0-9a-f]{64}', e['sha256']) and e['size'] > 100_000
        assert 'never redistributed' in e['licence']
        net = build_network(dict(e['network_g']))  # every architecture is a registered one
        assert type(net).__name__ == 'MaskedNet'
    assert entries['imgnet_30_multchannel_skip.pth']['sha256'].startswith('f9c2eb87')


def test_weights_list_shows_every_checkpoint_with_source_sha256_size_and_licence(home, capsys):
    code, out, err = _main(['weights', 'list'], capsys)
    assert code == 0 and not err
    for name, e in weights.registry().items():
        assert f'{zoo.stem(name)}: ours, shipped with the package' in out and e['sha256'] in out
    assert out.count('Apache-2.0 (this project)') == len(weights.registry())
    for name, e in zoo.zoo().items():
        block = out.split(f'{zoo.stem(name)}: ')[1].split('\n  source:')[0]
        assert f"{e['size']:,} bytes" in block and e['sha256'] in block and e['licence'] in block
        assert f'weights fetch {zoo.stem(name)}' in block  # not fetched yet
        assert f'{os.environ["BASICSR_DENOISE_ZOO_URL"]}/{name}' in out  # the mirror replaces the base URL
    assert f'cache: {home}' in out


def test_cache_folder_and_source_url_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv('BASICSR_DENOISE_HOME', raising=False)
    monkeypatch.delenv('BASICSR_DENOISE_ZOO_URL', raising=False)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert zoo.cache_dir() == str(tmp_path / 'xdg' / 'basicsr_denoise' / 'weights')
    assert zoo.source_url('imgnet_30_multchannel_dncnn') == zoo.zoo()['imgnet_30_multchannel_dncnn.pth']['url']
    monkeypatch.setenv('BASICSR_DENOISE_HOME', str(tmp_path / 'mine'))
    monkeypatch.setenv('BASICSR_DENOISE_ZOO_URL', 'http://mirror.example/ckpts/')
    assert zoo.cache_dir() == str(tmp_path / 'mine' / 'weights')
    mirror = 'http://mirror.example/ckpts/imgnet_30_multchannel_dncnn.pth'
    assert zoo.source_url('imgnet_30_multchannel_dncnn.pth') == mirror


# ------------------------------------------------------------------------------ fetch: the four cases
def test_fetch_good_file_is_verified_and_not_downloaded_twice(home, server, synthetic):
    path = zoo.fetch('synth', quiet=True)
    assert path == str(home / 'synth.pth') and open(path, 'rb').read() == synthetic
    assert server.requests == [('/ckpts/synth.pth', None)] and not os.path.exists(path + '.part')
    assert zoo.fetch('synth.pth', quiet=True) == path  # cached and intact: no request
    assert len(server.requests) == 1


def test_fetch_tampered_file_is_refused_and_deleted(home, server, synthetic):
    bad = bytearray(synthetic)
    bad[SIZE // 2] ^= 0xFF  # same size, one byte changed
    _serve(server, 'synth.pth', bytes(bad))
    with pytest.raises(CheckpointError) as exc:
        zoo.fetch('synth', quiet=True)
    msg = str(exc.value)
    assert 'does not match' in msg and 'refused and deleted' in msg and '\n' not in msg
    assert not os.listdir(home) and len(server.requests) == 1
    _serve(server, 'synth.pth', synthetic[:-10])  # another size: refused from the headers, nothing kept
    with pytest.raises(CheckpointError, match=f'serves {SIZE - 10:,} bytes .* has {SIZE:,}: not the registered file'):
        zoo.fetch('synth', quiet=True)
    assert not os.listdir(home) and len(server.requests) == 2


def test_fetch_cut_in_the_middle_keeps_the_part_and_resumes_with_a_range(home, server, synthetic, capsys):
    server.cuts = [70_000]
    with pytest.raises(CheckpointError) as exc:
        zoo.fetch('synth', retries=0)
    msg = str(exc.value)
    assert f'cut at 70,000 of {SIZE:,} bytes' in msg and 'again to resume' in msg and '\n' not in msg
    assert os.path.getsize(home / 'synth.pth.part') == 70_000 and not (home / 'synth.pth').exists()
    path = zoo.fetch('synth', retries=0)  # the next fetch asks only for the rest
    assert server.requests == [('/ckpts/synth.pth', None), ('/ckpts/synth.pth', 'bytes=70000-')]
    assert open(path, 'rb').read() == synthetic and not (home / 'synth.pth.part').exists()
    assert 'resuming at 70,000' in capsys.readouterr().err


def test_fetch_resumes_a_cut_by_itself_within_its_retries(home, server, synthetic):
    server.cuts = [10_000, 100_000]
    path = zoo.fetch('synth', quiet=True)
    assert open(path, 'rb').read() == synthetic
    assert [r for _, r in server.requests] == [None, 'bytes=10000-', 'bytes=110000-']


def test_fetch_without_a_server_is_a_one_line_error(home, monkeypatch, capsys):
    url = f'http://127.0.0.1:{_closed_port()}'
    monkeypatch.setenv('BASICSR_DENOISE_ZOO_URL', url)
    code, out, err = _main(['weights', 'fetch', 'imgnet_30_multchannel_skip'], capsys)
    assert code == 2 and not out
    assert err.count('\n') == 1 and err.startswith(f'error: cannot download imgnet_30_multchannel_skip from {url}/')
    assert not home.exists() or not os.listdir(home)


def test_weights_fetch_command_prints_the_file(home, server, synthetic, capsys):
    code, out, err = _main(['weights', 'fetch', 'synth'], capsys)
    assert code == 0 and out.strip() == str(home / 'synth.pth') and 'sha256 ok' in err
    code, out, _ = _main(['weights', 'fetch', 'MPI_syn_ours'], capsys)
    assert code == 0 and 'shipped with the package, nothing to fetch' in out
    assert len(server.requests) == 1


# ------------------------------------------------------------------------------ names
def test_unknown_names_are_one_line_errors_listing_the_known_ones(home, capsys):
    code, _, err = _main(['weights', 'fetch', 'imgnet_31_multchannel_skip'], capsys)
    assert code == 2 and err.count('\n') == 1
    assert "unknown zoo checkpoint 'imgnet_31_multchannel_skip'" in err and all(n in err for n in AUTHORS)
    with pytest.raises(CheckpointError) as exc:
        MPIDenoiser.from_pretrained('fast', weights='imgnet_31_multchannel_skip', device='cpu')
    msg = str(exc.value)
    assert 'not a known name' in msg and 'MPI_syn_ours' in msg and all(n in msg for n in AUTHORS)
    assert '\n' not in msg


def test_a_zoo_name_not_fetched_says_how_to_fetch_it(home, server):
    for name in ('imgnet_30_multchannel_skip', 'imgnet_30_multchannel_skip.pth'):
        with pytest.raises(CheckpointError) as exc:
            weights.resolve_weights(name)
        assert 'run basicsr-denoise weights fetch imgnet_30_multchannel_skip' in str(exc.value)
        assert '\n' not in str(exc.value)
    assert not server.requests  # nothing downloads without an explicit fetch


def test_weights_name_resolves_after_fetch_with_the_zoo_architecture(home, server, tiny_author):
    with pytest.raises(CheckpointError, match='weights fetch tiny_author'):
        MPIDenoiser.from_pretrained('fast', weights='tiny_author', device='cpu')
    path = zoo.fetch('tiny_author', quiet=True)
    # the preset fast builds a SkipNet; the zoo entry's network_g (a tiny DnCNN) is the architecture
    den = MPIDenoiser.from_pretrained('fast', weights='tiny_author', fill={'iterations': 1}, device='cpu')
    assert den.weights == path
    net, _, same = load_network('tiny_author.pth')  # the API and option files (path.pretrain_network_g) alike
    assert same == path and all(torch.equal(v, tiny_author.state_dict()[k]) for k, v in net.state_dict().items())
    assert load_weights(build_network(TINY), 'tiny_author') == path  # what a model's path.pretrain_network_g does
    with open(path, 'r+b') as f:  # damaged after the fetch: refused at load time
        f.seek(-20, os.SEEK_END)
        f.write(b'\0' * 20)
    with pytest.raises(CheckpointError, match='does not match the zoo'):
        weights.resolve_weights('tiny_author')


def test_a_folder_named_weights_is_still_an_input_of_the_denoise_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _main(['weights', '-o', str(tmp_path / 'out')], capsys)
    assert code == 2 and err.strip() == 'error: input not found: weights'
