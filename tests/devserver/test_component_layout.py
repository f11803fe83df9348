"""The component layout: an app that mounts convex/ as a component twice, its app-side functions, and the command
that writes them (``npm run app-functions``, scripts/convex-app-functions.ts)."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from aiida_structstore.core.exceptions import BackendError, ConfigurationError
from aiida_structstore.core.structures import Source, StructureContent, StructureKey
from aiida_structstore.store.convex import ConvexStore
from devserver.local_convex import COMPONENT_PREFIXES, ROOT, local_convex

APP = ROOT / 'devserver' / 'app' / 'convex'


def app_functions(*args: str) -> subprocess.CompletedProcess:
    tsx = ROOT / 'node_modules' / '.bin' / 'tsx'
    command = [str(tsx), str(ROOT / 'scripts' / 'convex-app-functions.ts'), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope='module')
def server():
    with local_convex(layout='component') as server:
        yield server


def test_the_functions_are_under_the_mount_names_and_need_the_admin_key(server):
    args = {'tenant_id': 't', 'workspace_id': 'w', 'structure_id': 'x'}
    for prefix in COMPONENT_PREFIXES:
        body = {'path': f'{prefix}structures:getStructure', 'args': args, 'format': 'json'}
        admin = {'Authorization': f'Convex {server.deploy_key}'}
        assert httpx.post(f'{server.url}/api/query', json=body, headers=admin).json()['value'] is None
        hidden = httpx.post(f'{server.url}/api/query', json=body).json()
        assert 'Could not find public function' in hidden['errorMessage']
    # The component's own functions are not the app's: nothing answers at the standalone paths.
    body = {'path': 'structures:getStructure', 'args': args, 'format': 'json'}
    reply = httpx.post(f'{server.url}/api/query', json=body, headers={'Authorization': f'Convex {server.deploy_key}'})
    assert 'Could not find public function' in reply.json()['errorMessage']


def test_two_mounts_are_two_stores(server):
    key = StructureKey.of('comp', 'ws', 'only-in-the-first')
    first = ConvexStore(server.url, server.deploy_key, function_prefix=COMPONENT_PREFIXES[0])
    second = ConvexStore(server.url, server.deploy_key, function_prefix=COMPONENT_PREFIXES[1])
    with first, second:
        first.structures.put(StructureContent(key=key, source=Source.of('cif'), cif='data_x\n'), raw='raw')
        assert first.structures.find(key) is not None
        assert second.structures.find(key) is None
        assert first.instance != second.instance
        assert first.store_id != second.store_id
        # A store of the standalone layout at this URL keeps the digest of the URL alone.
        with ConvexStore(server.url, server.deploy_key) as standalone:
            assert standalone.store_id not in (first.store_id, second.store_id)


def test_a_client_without_the_prefix_is_told_where_the_functions_may_be(server):
    with ConvexStore(server.url, server.deploy_key) as store, pytest.raises(BackendError) as info:
        store.current_instance()
    assert 'structures:getInstance is not deployed' in str(info.value)
    assert 'STRUCTURE_STORE_FUNCTION_PREFIX' in str(info.value)


def test_reset_wipes_every_mount():
    key = StructureKey.of('comp', 'ws', 'before-reset')
    with local_convex(layout='component') as server:
        stores = [ConvexStore(server.url, server.deploy_key, function_prefix=p) for p in COMPONENT_PREFIXES]
        for store in stores:
            store.structures.put(StructureContent(key=key, source=Source.of('cif'), cif='data_x\n'), raw='raw')
        server.reset()
        for store in stores:
            assert store.structures.find(key) is None
            store.close()


def test_an_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="layout 'mounted' is not one of standalone, component"):
        with local_convex(layout='mounted'):
            pass


@pytest.mark.parametrize('prefix', ['structstore', '/structstore/', 'struct store/', 'a/../b/', 'x' * 30 + ':/'])
def test_a_bad_function_prefix_is_named(prefix):
    with pytest.raises(ConfigurationError, match=r'STRUCTURE_STORE_FUNCTION_PREFIX=.* is not a function prefix'):
        ConvexStore('http://127.0.0.1:1', 'key', function_prefix=prefix)


@pytest.mark.parametrize('name', ['structstore', 'structstore2'])
def test_the_app_side_functions_are_current(name):
    """devserver/app/convex holds what ``npm run app-functions`` writes for each mount; a module of convex/ that
    gains, loses or changes a function makes this fail until the command is run again."""
    result = app_functions('--out', str(APP), '--name', name, '--check')
    assert result.returncode == 0, result.stderr


def test_the_command_writes_a_module_for_each_module_of_the_component(tmp_path):
    result = app_functions('--out', str(tmp_path), '--name', 'mine')
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / 'mine').iterdir()) == [
        'executions.ts',
        'optimade.ts',
        'structures.ts',
        'uploads.ts',
    ]
    text = (tmp_path / 'mine' / 'structures.ts').read_text()
    assert 'export const putBatch = internalMutation({' in text
    assert 'ctx.runMutation(components.mine.structures.putBatch, args)' in text
    assert 'ctx.runQuery(components.mine.structures.getStructure, args)' in text


def test_the_command_refuses_a_bad_name_or_folder(tmp_path):
    bad = app_functions('--out', str(tmp_path), '--name', 'my-store')
    assert bad.returncode != 0
    assert '--name "my-store" is not a component name' in bad.stderr
    missing = app_functions('--out', str(tmp_path / 'nowhere'), '--name', 'mine')
    assert missing.returncode != 0
    assert 'does not exist' in missing.stderr


def test_the_standalone_copy_is_internal(tmp_path):
    """``--standalone`` copies the component's files into an app's convex/ folder with layout.ts saying
    "standalone" (every function internal), without the component definition."""
    result = app_functions('--standalone', str(tmp_path))
    assert result.returncode == 0, result.stderr
    names = {p.name for p in tmp_path.iterdir()}
    assert {'schema.ts', 'structures.ts', 'executions.ts', 'optimade.ts', 'layout.ts', 'limits.json'} <= names
    assert 'convex.config.ts' not in names
    assert not any(name.endswith('.test.ts') for name in names)
    assert 'export const LAYOUT: "component" | "standalone" = "standalone";' in (tmp_path / 'layout.ts').read_text()
    # Built there, every function is internal.
    shutil.copytree(ROOT / 'convex' / '_generated', tmp_path / '_generated')
    probe = tmp_path / 'probe.mts'
    probe.write_text(
        'import * as s from "./structures.ts";\n'
        'const kinds = Object.values(s).filter((f: any) => f && (f.isQuery || f.isMutation));\n'
        'console.log(JSON.stringify({n: kinds.length, internal: kinds.every((f: any) => f.isInternal)}));\n'
    )
    tsx = ROOT / 'node_modules' / '.bin' / 'tsx'
    # Resolve `convex/...` from the repository's node_modules.
    (tmp_path / 'node_modules').symlink_to(ROOT / 'node_modules')
    out = subprocess.run([str(tsx), str(probe)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().endswith('"internal":true}')
    assert '"n":0' not in out.stdout


def test_the_command_wraps_actions_and_refuses_internal_functions(tmp_path):
    """A module's action gets an ``internalAction`` that runs it; an internal function of the component cannot be
    called by the app, so the command names it and says how to build it."""
    component = tmp_path / 'component'
    shutil.copytree(ROOT / 'convex' / '_generated', component / '_generated')
    for name in ('convex.config.ts', 'layout.ts'):
        shutil.copy(ROOT / 'convex' / name, component / name)
    (tmp_path / 'node_modules').symlink_to(ROOT / 'node_modules')
    (component / 'jobs.ts').write_text(
        'import { v } from "convex/values";\n'
        'import { storeAction, storeQuery } from "./layout";\n'
        'export const run = storeAction({ args: { n: v.number() }, handler: async (_ctx, { n }) => n + 1 });\n'
        'export const status = storeQuery({ args: {}, handler: async () => "idle" });\n'
    )
    app = tmp_path / 'app'
    app.mkdir()
    result = app_functions('--component', str(component), '--out', str(app), '--name', 'jobs')
    assert result.returncode == 0, result.stderr
    text = (app / 'jobs' / 'jobs.ts').read_text()
    assert 'import { internalAction, internalQuery } from "../_generated/server";' in text
    assert 'export const run = internalAction({' in text
    assert 'ctx.runAction(components.jobs.jobs.run, args)' in text

    (component / 'hidden.ts').write_text(
        'import { internalQueryGeneric } from "convex/server";\n'
        'export const secret = internalQueryGeneric({ args: {}, handler: async () => 1 });\n'
    )
    refused = app_functions('--component', str(component), '--out', str(app), '--name', 'jobs')
    assert refused.returncode != 0
    assert 'hidden.ts: secret is internal, so an app that mounts the component cannot call it' in refused.stderr
    not_a_component = app_functions('--component', str(tmp_path), '--out', str(app), '--name', 'jobs')
    assert 'has no convex.config.ts' in not_a_component.stderr
