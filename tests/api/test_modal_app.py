"""The Modal app of the read API (``aiida_structstore/api/modal_app.py``, ``docs/deploy.md``), without Modal's servers.

Modal's objects are plain Python until ``modal deploy``: the tests read the app, its function and the image's build
steps offline. The image steps are read from the closures of Modal's lazy loaders (there is no public offline
accessor; checked against modal 1.6.4). The ASGI app the function serves (``api.local()``) runs under uvicorn
against the local Convex server and passes the structures API's own tests.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

modal = pytest.importorskip('modal')
toml = pytest.importorskip('toml')  # a dependency of modal, which reads pyproject.toml with it too

from aiida_structstore.api import modal_app  # noqa: E402
from aiida_structstore.core.exceptions import ConfigurationError  # noqa: E402

from .conftest import SECRET, bearer, make_token, serve  # noqa: E402
from .test_structures import (  # noqa: E402, F401 - collected here again, against the app Modal serves
    TestAuthentication,
    TestCaching,
    TestIsolation,
    TestRoutes,
    auth,
    test_the_app_reads_through_open_store,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY_DOC = ROOT / 'docs' / 'deploy.md'
BUILDER_VERSION = '2026.10'


def _clean_environment(home: pathlib.Path, **extra: str) -> dict[str, str]:
    """This process's environment without Modal's settings or credentials, with an empty home (no ~/.modal.toml)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(('MODAL_', 'STRUCTSTORE_MODAL_'))}
    return {**env, 'HOME': str(home), 'PYTHONPATH': str(ROOT), **extra}


# --- The app and its function, read offline -------------------------------------------------------------------------

#: Run in a fresh interpreter with every network connection refused: import the module, report what Modal recorded.
OFFLINE = r"""
import json, socket, sys

def refuse(*args, **kwargs):
    raise OSError('network access from an offline test')

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse

import aiida_structstore.api.modal_app as m
from modal._utils.async_utils import synchronizer

function = synchronizer._translate_in(m.api)
info = m.api.info()
def cells(function):
    return dict(zip(function.__code__.co_freevars, (c.cell_contents for c in function.__closure__)))

named, deploy_env = function._spec.secrets
print(json.dumps({
    'app': m.app.name,
    'functions': sorted(m.app.registered_functions),
    'webhook': function._webhook_config.type,
    'asgi': function._webhook_config.type == __import__('modal_proto.api_pb2').api_pb2.WEBHOOK_TYPE_ASGI_APP,
    'domains': [domain.name for domain in function._webhook_config.custom_domains],
    'secret': cells(named._load)['name'],
    'required_keys': cells(named._load)['required_keys'],
    'env': cells(deploy_env._load)['load_env_dict'](),
    'max_inputs': info.concurrency_info.max_inputs,
    'aiida': sorted(name for name in sys.modules if name == 'aiida' or name.startswith('aiida.')),
}))
"""


def _offline(tmp_path: pathlib.Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-c', OFFLINE],
        capture_output=True,
        text=True,
        env=_clean_environment(tmp_path, **extra),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_the_module_imports_without_credentials_or_network(tmp_path):
    result = _offline(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['app'] == 'aiida-structstore' and report['functions'] == ['api']
    assert report['asgi'] and report['domains'] == []
    assert report['secret'] == 'aiida-structstore'
    assert report['required_keys'] == ['CONVEX_URL', 'CONVEX_DEPLOY_KEY']
    # The deploy-time choices travel with the function, so a container defines the same app.
    assert report['env'] == {
        'STRUCTSTORE_MODAL_APP': 'aiida-structstore',
        'STRUCTSTORE_MODAL_SECRET': 'aiida-structstore',
        'STRUCTSTORE_MODAL_DOMAINS': '',
    }
    assert report['max_inputs'] == modal_app.MAX_INPUTS
    assert report['aiida'] == []


def test_deploy_time_choices_from_the_environment(tmp_path):
    result = _offline(
        tmp_path,
        STRUCTSTORE_MODAL_APP='structures-staging',
        STRUCTSTORE_MODAL_SECRET='structures-staging',
        STRUCTSTORE_MODAL_DOMAINS='Structures.Example.org, api.example.org',
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['app'] == report['secret'] == 'structures-staging'
    assert report['domains'] == ['structures.example.org', 'api.example.org']
    assert report['env']['STRUCTSTORE_MODAL_DOMAINS'] == 'structures.example.org,api.example.org'


@pytest.mark.parametrize(
    ('environ', 'message'),
    [
        ({'STRUCTSTORE_MODAL_DOMAINS': 'https://structures.example.org'}, 'STRUCTSTORE_MODAL_DOMAINS'),
        ({'STRUCTSTORE_MODAL_DOMAINS': 'structures.example.org:8443'}, 'not a domain name'),
        ({'STRUCTSTORE_MODAL_DOMAINS': 'localhost'}, 'not a domain name'),
        ({'STRUCTSTORE_MODAL_APP': 'my app'}, 'STRUCTSTORE_MODAL_APP must be a Modal name'),
        ({'STRUCTSTORE_MODAL_SECRET': 'a/b'}, 'STRUCTSTORE_MODAL_SECRET must be a Modal name'),
    ],
)
def test_bad_deploy_time_choices_are_refused_naming_the_variable(environ, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        modal_app.deploy_options(environ)


def test_the_default_deploy_time_choices():
    assert modal_app.deploy_options({}) == {'app': 'aiida-structstore', 'secret': 'aiida-structstore', 'domains': []}


#: The ``modal`` command line, run in-process with every network connection refused.
MODAL_CLI = r"""
import socket, sys

def refuse(*args, **kwargs):
    raise OSError('network access from an offline test')

socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse

from modal.__main__ import main

sys.argv = ['modal', *sys.argv[1:]]
sys.exit(main())
"""


def _deploy_command_of_the_docs() -> list[str]:
    (line,) = [line for block in _doc_blocks('bash') for line in block.splitlines() if line.startswith('modal deploy')]
    return line.split('#')[0].split()[1:]


@pytest.mark.parametrize(
    ('environ', 'expected'),
    [
        ({}, 'Token missing'),  # the app was found and imported; deploying needs an account
        ({'STRUCTSTORE_MODAL_DOMAINS': 'https://structures.example.org'}, 'STRUCTSTORE_MODAL_DOMAINS'),
    ],
)
def test_the_docs_deploy_command_finds_the_app_and_stops_at_the_missing_token(tmp_path, environ, expected):
    arguments = _deploy_command_of_the_docs()
    assert arguments == ['deploy', '-m', 'aiida_structstore.api.modal_app']
    result = subprocess.run(
        [sys.executable, '-c', MODAL_CLI, *arguments],
        capture_output=True,
        text=True,
        env=_clean_environment(tmp_path, COLUMNS='200', **environ),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output, output[-3000:]
    assert 'network access from an offline test' not in output


def test_create_app_never_imports_modal(tmp_path):
    program = (
        'import sys\nfrom aiida_structstore.api import create_app\ncreate_app()\n'
        "print(sorted(n for n in sys.modules if n == 'modal' or n.startswith('modal.')))"
    )
    env = _clean_environment(tmp_path, STRUCTURE_STORE_BACKEND='memory', STRUCTURE_API_JWT_SECRET=SECRET)
    result = subprocess.run(
        [sys.executable, '-c', program], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == '[]'


# --- The image ------------------------------------------------------------------------------------------------------


def _layers(image) -> list[dict]:
    """The image's layers from the top down: each layer's Dockerfile commands and the files its context copies
    (remote path → local path). Read from the closures of Modal's loaders, without building anything."""
    from modal._utils.async_utils import synchronizer

    layers, layer = [], synchronizer._translate_in(image)
    while layer is not None:
        load = layer._load
        cells = dict(
            zip(load.__code__.co_freevars, (cell.cell_contents for cell in load.__closure__ or ()), strict=True)
        )
        assert 'dockerfile_function' in cells, f'a layer that is not a build step: {layer}'
        spec = cells['dockerfile_function'](BUILDER_VERSION)
        context = cells['context_mount_function'](BUILDER_VERSION) if cells['context_mount_function'] else None
        files = {}
        if context is not None:
            for entry in context._entries:
                files.update({str(remote): pathlib.Path(local) for local, remote in entry.get_files_to_upload()})
        layers.append({'commands': spec.commands, 'files': files})
        layer = next(iter(cells['base_images'].values()), None)
    return layers


def test_the_image_installs_this_checkout_with_the_api_extra():
    from modal._utils.async_utils import synchronizer

    function = synchronizer._translate_in(modal_app.api)
    install, copy, dependencies, base = _layers(function._spec.image)

    assert base['commands'][0].startswith(f'FROM python:{modal_app.PYTHON_VERSION}-slim')
    project = toml.loads((ROOT / 'pyproject.toml').read_text(encoding='utf-8'))['project']
    wanted = sorted(project['dependencies'] + project['optional-dependencies']['api'])
    assert dependencies['commands'] == ['FROM base', f'RUN python -m pip install {shlex.join(wanted)}']
    assert copy['commands'] == ['FROM base', 'COPY . /']
    assert install['commands'] == ['FROM base', "RUN python -m pip install '/opt/aiida-structstore[api]'"]

    source = pathlib.PurePosixPath(modal_app.SOURCE_DIR)
    copied = {
        pathlib.PurePosixPath(remote).relative_to(source).as_posix(): local for remote, local in copy['files'].items()
    }
    package = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / 'aiida_structstore').rglob('*')
        if path.is_file() and '__pycache__' not in path.parts and path.suffix != '.pyc'
    }
    assert set(copied) == package | {'pyproject.toml', 'README.md', 'convex/limits.json'}
    assert 'aiida_structstore/api/static/viewer.js' in copied  # the built bundle, which git ignores
    assert 'aiida_structstore/api/modal_app.py' in copied
    assert all(local == ROOT / name for name, local in copied.items())

    # The function runs the installed package: no mount of the local source shadows it.
    # The function runs the installed package: no mount of local files (only Modal's own client mount, by name).
    assert [mount._entries for mount in function._spec.mounts] == [None]


#: Run from the package the image installs, outside the checkout, as a Modal container runs it (``modal.is_local()``
#: is False there): import the module, then serve the app its function returns.
IN_CONTAINER = r"""
import json, sys
from modal._runtime.task_lifecycle_manager import _TaskLifecycleManager

_TaskLifecycleManager._singleton = object()  # what a Modal container has while it runs a function
import modal
assert not modal.is_local()

import aiida_structstore
import aiida_structstore.api.modal_app as m
from fastapi.testclient import TestClient

headers = {'Authorization': 'Bearer ' + sys.argv[1]}
with TestClient(m.api.local()) as client:
    report = {
        'package': aiida_structstore.__file__,
        'viewer': [client.get(path).status_code for path in ('/viewer/', '/viewer/viewer.js')],
        'anonymous': client.get('/api/structures').status_code,
        'list': client.get('/api/structures', headers=headers).json(),
        'optimade': client.get('/optimade/v1/info', headers=headers).status_code,
    }
print(json.dumps(report))
"""


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_the_image_install_serves_as_in_a_modal_container(tmp_path):
    """The image's steps replayed here without network: the files its COPY layer takes, built into a wheel and
    installed (the last layer's ``pip install``, without the dependencies this environment has) into a folder
    outside the checkout; imported from there as in a container, the Modal function's app serves the viewer, the API
    and OPTIMADE."""
    from modal._utils.async_utils import synchronizer

    _, copy, _, _ = _layers(synchronizer._translate_in(modal_app.api)._spec.image)
    source = tmp_path / 'src'
    for remote, local in copy['files'].items():
        target = source / pathlib.PurePosixPath(remote).relative_to(modal_app.SOURCE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '--no-input']
    _run([*pip, 'wheel', '--no-deps', '--no-build-isolation', '--no-index', '-w', str(tmp_path / 'dist'), str(source)])
    (wheel,) = (tmp_path / 'dist').glob('aiida_structstore-*.whl')
    _run([*pip, 'install', '--no-deps', '--no-index', '--target', str(tmp_path / 'site'), str(wheel)])

    env = _clean_environment(tmp_path, STRUCTURE_STORE_BACKEND='memory', STRUCTURE_API_JWT_SECRET=SECRET)
    env['PYTHONPATH'] = str(tmp_path / 'site')
    result = _run([sys.executable, '-c', IN_CONTAINER, make_token('acme', ['lab'])], env=env, cwd=tmp_path)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['package'] == str(tmp_path / 'site' / 'aiida_structstore' / '__init__.py')
    assert report['viewer'] == [200, 200]
    assert report['anonymous'] == 401
    assert report['list'] == {'workspace': 'lab', 'items': [], 'next_cursor': None}
    assert report['optimade'] == 200


@pytest.mark.parametrize(
    ('path', 'left_out'),
    [
        ('pyproject.toml', False),
        ('README.md', False),
        ('convex', False),
        ('convex/limits.json', False),
        ('aiida_structstore', False),
        ('aiida_structstore/api/static/viewer.js', False),
        ('convex/structures.ts', True),
        ('convex/_generated', True),
        ('aiida_structstore/__pycache__', True),
        ('aiida_structstore/api/__pycache__/app.cpython-311.pyc', True),
        ('aiida_structstore/api/app.pyc', True),
        ('tests', True),
        ('.venv', True),
        ('node_modules', True),
        ('devserver', True),
        ('.git', True),
        ('structstore-modal.env', True),  # the secret's values stay out of the image
    ],
)
def test_the_image_copies_only_what_the_wheel_is_built_from(path, left_out):
    ignore = modal_app.package_files(ROOT)
    assert ignore(pathlib.Path(path)) is left_out
    assert ignore(ROOT / path) is left_out


def test_the_image_needs_a_checkout_with_the_viewer_built(tmp_path):
    with pytest.raises(ConfigurationError, match='deploy the Modal app from a source checkout'):
        modal_app.build_image(tmp_path)
    shutil.copy(ROOT / 'pyproject.toml', tmp_path)
    with pytest.raises(ConfigurationError, match=re.escape('the checkout has no README.md')):
        modal_app.build_image(tmp_path)
    shutil.copy(ROOT / 'README.md', tmp_path)
    (tmp_path / 'convex').mkdir()
    shutil.copy(ROOT / 'convex' / 'limits.json', tmp_path / 'convex')
    with pytest.raises(ConfigurationError, match=re.escape('npm run build:viewer')):
        modal_app.build_image(tmp_path)
    bundle = tmp_path / modal_app.VIEWER_BUNDLE
    bundle.parent.mkdir(parents=True)
    bundle.write_text('// built')
    assert modal_app.build_image(tmp_path) is not None


# --- The secret's values --------------------------------------------------------------------------------------------

GOOD = {
    'CONVEX_URL': 'https://happy-otter-123.convex.cloud',
    'CONVEX_DEPLOY_KEY': 'prod:happy-otter-123|secret-part',
    'STRUCTURE_API_JWKS_URL': 'https://clerk.example.org/.well-known/jwks.json',
    'STRUCTURE_API_JWT_ISSUER': 'https://clerk.example.org',
}


def test_a_complete_secret_passes_with_notes_for_what_is_left_at_its_default():
    notes = modal_app.check_secret(GOOD)
    assert any('STRUCTURE_API_PUBLIC_URL' in note for note in notes)
    assert any('STRUCTURE_API_CORS_ORIGINS' in note for note in notes)
    full = GOOD | {
        'STRUCTURE_API_PUBLIC_URL': 'https://structures.example.org',
        'STRUCTURE_API_CORS_ORIGINS': 'https://a.example',
    }
    assert modal_app.check_secret(full) == []


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        ({'CONVEX_DEPLOY_KEY': None}, 'the Modal secret needs CONVEX_DEPLOY_KEY'),
        ({'CONVEX_URL': None, 'CONVEX_DEPLOY_KEY': None}, 'needs CONVEX_URL and CONVEX_DEPLOY_KEY'),
        ({'STRUCTURE_STORE_BACKEND': 'memory'}, 'STRUCTURE_STORE_BACKEND must be convex'),
        ({'CONVEX_URL': 'http://127.0.0.1:3210'}, 'a Modal container cannot reach it'),
        ({'CONVEX_URL': 'http://convex.example.org'}, 'CONVEX_URL'),
        ({'STRUCTURE_STORE_SETTINGS_FILE': '/etc/structstore.env'}, 'has no place in the Modal secret'),
        ({'STRUCTURE_API_JWKS_URL': None}, 'STRUCTURE_API_JWT_SECRET (HS256) or STRUCTURE_API_JWKS_URL'),
        ({'STRUCTURE_API_JWT_SECRET': 'too-short'}, 'STRUCTURE_API_JWT_SECRET is too short'),
        ({'STRUCTURE_API_LEEWAY': 'soon'}, 'STRUCTURE_API_LEEWAY: Input should be a valid number'),
    ],
)
def test_a_secret_that_cannot_work_is_refused_naming_the_problem(change, message):
    values = {name: value for name, value in (GOOD | change).items() if value is not None}
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        modal_app.check_secret(values)
    assert 'secret-part' not in str(caught.value)


def test_the_check_reads_the_secret_only_not_this_machines_environment(monkeypatch):
    monkeypatch.setenv('STRUCTURE_API_JWT_SECRET', SECRET)  # set here, but not in the secret
    without_jwt = {name: value for name, value in GOOD.items() if name != 'STRUCTURE_API_JWKS_URL'}
    with pytest.raises(ConfigurationError, match='there is no anonymous access'):
        modal_app.check_secret(without_jwt)
    assert os.environ['STRUCTURE_API_JWT_SECRET'] == SECRET  # the environment is back


def _doc_blocks(language: str) -> list[str]:
    return re.findall(rf'```{language}\n(.*?)```', DEPLOY_DOC.read_text(encoding='utf-8'), flags=re.DOTALL)


def _check_commands() -> str:
    """The bash block of step 2 of docs/deploy.md (the one that runs the check)."""
    (block,) = [block for block in _doc_blocks('bash') if 'modal_app check' in block]
    return block


def _run_doc_check(tmp_path: pathlib.Path, dotenv: str) -> subprocess.CompletedProcess:
    (tmp_path / 'structstore-modal.env').write_text(dotenv, encoding='utf-8')
    (tmp_path / 'home').mkdir(exist_ok=True)
    env = _clean_environment(tmp_path / 'home', PATH=f'{pathlib.Path(sys.executable).parent}:{os.environ["PATH"]}')
    return subprocess.run(
        ['bash', '-euo', 'pipefail', '-c', _check_commands()],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_the_docs_check_step_runs_as_written_on_the_docs_secret_file(tmp_path):
    (dotenv,) = _doc_blocks('dotenv')
    result = _run_doc_check(tmp_path, dotenv)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith('app aiida-structstore: function api, secret aiida-structstore (CONVEX_DEPLOY_KEY, ')
    assert 'STRUCTURE_API_CORS_ORIGINS' in lines[0] and 'eyJ' not in result.stdout  # names, never values
    assert lines[1] == 'web endpoint: https://<workspace>--aiida-structstore-api.modal.run'
    assert lines[2] == f"image: python 3.11, pip install '/opt/aiida-structstore[api]' from {ROOT}"
    assert lines[-1] == 'ok' and not any(line.startswith('note:') for line in lines)
    assert (tmp_path / 'structstore-modal.env').stat().st_mode & 0o077 == 0  # the doc's chmod ran


def test_the_docs_check_step_refuses_a_broken_file(tmp_path):
    (dotenv,) = _doc_blocks('dotenv')
    broken = '\n'.join(line for line in dotenv.splitlines() if not line.startswith('CONVEX_DEPLOY_KEY='))
    result = _run_doc_check(tmp_path, broken)
    assert result.returncode == 2
    assert result.stderr.strip() == 'error: the Modal secret needs CONVEX_DEPLOY_KEY (modal deploy refuses it without)'


def test_the_check_refuses_a_file_others_can_read(tmp_path, capsys):
    path = tmp_path / 'structstore-modal.env'
    path.write_text(''.join(f'{name}={value}\n' for name, value in GOOD.items()))
    path.chmod(0o644)
    with pytest.raises(SystemExit) as exited:
        modal_app.main(['check', str(path)])
    assert exited.value.code == 2
    assert f'run `chmod 600 {path}`' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        modal_app.main(['check', str(tmp_path / 'missing.env')])
    assert 'does not exist' in capsys.readouterr().err


# --- The ASGI app the Modal function serves, under uvicorn over the local Convex server ----------------------------


@pytest.fixture
def backend(convex_backend):
    """Only the local Convex server: the app on Modal reads Convex (overrides the conftest's memory + Convex)."""
    return convex_backend


@pytest.fixture
def client(backend, api_settings) -> Iterator[httpx.Client]:
    """The app ``api.local()`` returns (what Modal serves), built from the environment as in a container, served by
    uvicorn on a free port; the structures tests call it over real HTTP."""
    server = serve(modal_app.api.local())
    live = next(server)
    try:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            yield http
    finally:
        server.close()


def test_the_modal_function_serves_the_read_api(client, backend, seed, tenant):
    seed(backend, tenant, 'lab', ('si',))
    response = client.get(
        '/api/structures/si/view', params={'format': 'cif'}, headers=bearer(make_token(tenant, ['lab']))
    )
    assert response.status_code == 200 and '\ndata_si\n' in response.text
    assert client.get('/viewer/').status_code == 200
    assert client.get('/viewer/viewer.js').status_code == 200


def test_cors_from_the_secret_through_the_modal_function(backend, api_settings, seed, tenant, monkeypatch):
    seed(backend, tenant, 'lab', ('si',))
    monkeypatch.setenv('STRUCTURE_API_CORS_ORIGINS', 'https://app.example.org')
    server = serve(modal_app.api.local())
    live = next(server)
    try:
        headers = bearer(make_token(tenant, ['lab']))
        with httpx.Client(base_url=live.url, timeout=30) as http:
            allowed = http.get('/api/structures/si', headers=headers | {'Origin': 'https://app.example.org'})
            refused = http.get('/api/structures/si', headers=headers | {'Origin': 'https://evil.example'})
            preflight = http.options(
                '/api/structures/si',
                headers={'Origin': 'https://app.example.org', 'Access-Control-Request-Method': 'GET'},
            )
    finally:
        server.close()
    assert allowed.status_code == 200 and allowed.headers['access-control-allow-origin'] == 'https://app.example.org'
    assert 'access-control-allow-origin' not in refused.headers
    assert preflight.status_code == 200 and 'Authorization' in preflight.headers['access-control-allow-headers']


@pytest.mark.slow
def test_the_cold_start_benchmark_runs():
    command = [sys.executable, str(ROOT / 'benchmarks' / 'bench_modal_coldstart.py'), '--repeat', '1']
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '(d) modal loaded: import modal_app + api.local()' in result.stdout
    assert 'the Modal module adds (d) - (c) = ' in result.stdout
