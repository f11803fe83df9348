"""The work chain hook of ``uploads import``: a configured work chain submitted to the daemon on each imported
structure, once; and the inputs of ``structstore.pw_base_project`` built from a protocol for such a structure."""

from __future__ import annotations

import pathlib
import secrets

import pytest
from aiida import orm

from aiida_structstore.cli import cmd_structstore
from aiida_structstore.core.exceptions import ConfigurationError
from aiida_structstore.uploads.workchain import WorkchainHook

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRAIN = 'tests.executions.processes:StrainWorkChain'
FAKE_UPF = '<UPF version="2.0.1">\n<PP_HEADER element="{element}" z_valence="4.0" pseudo_type="NC"/>\n</UPF>\n'


def test_the_configured_work_chain_runs_on_the_imported_structure_once(
    convex_backend, store_daemon, submit_and_await, run_cli_command
):
    store = convex_backend
    if not hasattr(store, 'uploads'):
        pytest.skip('the Convex backend has no uploads yet')
    tenant, space, group = 'acme', f'chain-{secrets.token_hex(3)}', f'uploads/chain-{secrets.token_hex(3)}'
    path = ROOT / 'examples' / 'cif' / 'si.cif'
    record, _ = store.uploads.create(
        tenant, space, filename=path.name, kind='cif', content=path.read_bytes(), uploaded_by='frank'
    )
    args = ['uploads', 'import', '-t', tenant, '-w', space, '--group', group, '--workchain', STRAIN]
    result = run_cli_command(cmd_structstore, args)

    structure = orm.load_node(store.uploads.get(record.key).node_uuid)
    chains = structure.base.links.get_outgoing(node_class=orm.WorkChainNode).all_nodes()
    assert len(chains) == 1
    chain = chains[0]
    assert f'work chain {chain.pk}' in result.output
    assert chain.process_type == 'tests.executions.processes.StrainWorkChain'
    submit_and_await(chain, timeout=120)
    assert chain.is_finished_ok
    assert chain.inputs.structure.uuid == structure.uuid
    # An importer that finds this import again (it crashed before marking the upload) submits nothing more.
    hook = WorkchainHook(STRAIN)
    assert hook.submit_once(structure, store.uploads.get(record.key), 'si') == chain.pk
    assert len(structure.base.links.get_outgoing(node_class=orm.WorkChainNode).all_nodes()) == 1


def test_pw_base_project_inputs_are_built_from_the_protocol(aiida_code_installed, generate_structure, tmp_path):
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    folder = tmp_path / 'family'
    folder.mkdir()
    (folder / 'Si.UPF').write_text(FAKE_UPF.format(element='Si'))
    family = PseudoPotentialFamily.create_from_folder(folder, f'uploads-{tmp_path.name}', pseudo_type=UpfData)
    code = aiida_code_installed(default_calc_job_plugin='quantumespresso.pw', filepath_executable='/usr/bin/pw.x')
    overrides = {'pseudo_family': family.label, 'pw': {'parameters': {'SYSTEM': {'ecutwfc': 30, 'ecutrho': 240}}}}
    hook = WorkchainHook('structstore.pw_base_project', code=code.full_label, protocol='fast', overrides=overrides)
    structure = generate_structure('silicon').store()

    builder = hook.builder(structure, 'acme', 'lab', 'si-upload')

    assert builder.base.pw.structure.uuid == structure.uuid
    assert builder.base.pw.code.uuid == code.uuid
    assert builder.base.pw.pseudos['Si'].uuid == family.get_pseudo('Si').uuid
    assert builder.base.pw.parameters['SYSTEM']['ecutwfc'] == 30
    assert 'clean_workdir' not in builder.base
    assert (builder.tenant_id.value, builder.workspace_id.value, builder.id_prefix.value) == (
        'acme',
        'lab',
        'si-upload',
    )

    assert builder._port_namespace.validate(builder._inputs(prune=True)) is None


@pytest.mark.parametrize(
    ('name', 'code', 'message'),
    [
        ('no.such.workchain', None, "cannot load the uploads work chain 'no.such.workchain'"),
        ('aiida_structstore.uploads.workchain:load_workchain', None, 'is not a WorkChain class'),
        ('structstore.pw_base_project', None, 'needs a code'),
    ],
)
def test_a_bad_work_chain_setting_is_named(name, code, message):
    with pytest.raises(ConfigurationError, match=message):
        WorkchainHook(name, code=code)


@pytest.mark.parametrize(
    ('variable', 'value', 'message'),
    [
        ('STRUCTURE_STORE_UPLOADS_LEASE', 'soon', 'STRUCTURE_STORE_UPLOADS_LEASE: Input should be a valid number'),
        (
            'STRUCTURE_STORE_UPLOADS_WORKCHAIN_OVERRIDES',
            '[1]',
            'WORKCHAIN_OVERRIDES: Value error, must be a JSON object',
        ),
        ('STRUCTURE_STORE_UPLOADS_WORKCHAIN_OVERRIDES', '{', 'WORKCHAIN_OVERRIDES: Value error, not valid JSON'),
    ],
)
def test_a_bad_upload_setting_is_named(monkeypatch, variable, value, message):
    from aiida_structstore.uploads.settings import read_upload_settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as raised:
        read_upload_settings()
    assert message in str(raised.value)
    assert 'STRUCTURE_STORE_UPLOADS_STRUCTURE' not in str(raised.value)
