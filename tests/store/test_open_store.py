"""Backend selection from the environment, and that secrets never show."""

from __future__ import annotations

import os

import pytest

from aiida_structstore.core.exceptions import ConfigurationError
from aiida_structstore.store import MemoryStore, StoreSettings, load_settings, open_store

SECRET = 'prod:deploy-key-value-that-must-never-show'


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in (
        'STRUCTURE_STORE_BACKEND',
        'CONVEX_URL',
        'CONVEX_DEPLOY_KEY',
        'STRUCTURE_STORE_TIMEOUT',
        'STRUCTURE_STORE_RETRIES',
        'STRUCTURE_STORE_FUNCTION_PREFIX',
    ):
        monkeypatch.delenv(name, raising=False)
    # No user settings file may leak into these tests.
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.delenv('STRUCTURE_STORE_SETTINGS_FILE', raising=False)


def test_memory_backend(monkeypatch):
    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'memory')
    store = open_store()
    assert isinstance(store, MemoryStore)
    assert open_store() is store


def test_default_backend_is_convex_and_names_both_missing_variables():
    with pytest.raises(ConfigurationError) as info:
        open_store()
    assert 'CONVEX_URL and CONVEX_DEPLOY_KEY' in str(info.value)


@pytest.mark.parametrize(
    ('present', 'missing'), [('CONVEX_URL', 'CONVEX_DEPLOY_KEY'), ('CONVEX_DEPLOY_KEY', 'CONVEX_URL')]
)
def test_convex_names_the_one_missing_variable(monkeypatch, present, missing):
    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'convex')
    monkeypatch.setenv(present, SECRET if present == 'CONVEX_DEPLOY_KEY' else 'https://x.convex.cloud')
    with pytest.raises(ConfigurationError, match=f'requires {missing} to be set') as info:
        open_store()
    assert SECRET not in str(info.value)


def test_empty_value_counts_as_missing(monkeypatch):
    monkeypatch.setenv('CONVEX_URL', 'https://x.convex.cloud')
    monkeypatch.setenv('CONVEX_DEPLOY_KEY', '   ')
    with pytest.raises(ConfigurationError, match='requires CONVEX_DEPLOY_KEY'):
        open_store()


def test_unknown_backend_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv('STRUCTURE_STORE_BACKEND', 'sqlite')
    with pytest.raises(ConfigurationError, match="'sqlite' is not a known backend; valid backends: convex, memory"):
        open_store()


def test_function_prefix_names_where_the_functions_are(monkeypatch):
    from aiida_structstore.store.convex import ConvexStore

    monkeypatch.setenv('CONVEX_URL', 'https://x.convex.cloud')
    monkeypatch.setenv('CONVEX_DEPLOY_KEY', SECRET)
    with ConvexStore.from_settings(load_settings()) as store:
        assert store.transport.function_prefix == ''
    monkeypatch.setenv('STRUCTURE_STORE_FUNCTION_PREFIX', 'structstore/')
    with ConvexStore.from_settings(load_settings()) as store:
        assert store.transport.function_prefix == 'structstore/'
    monkeypatch.setenv('STRUCTURE_STORE_FUNCTION_PREFIX', 'structstore')
    with pytest.raises(
        ConfigurationError, match="STRUCTURE_STORE_FUNCTION_PREFIX='structstore' is not a function"
    ) as info:
        load_settings()
    assert SECRET not in str(info.value)


def test_bad_url_is_named_without_the_key(monkeypatch):
    monkeypatch.setenv('CONVEX_URL', 'ftp://nope')
    monkeypatch.setenv('CONVEX_DEPLOY_KEY', SECRET)
    with pytest.raises(ConfigurationError, match='CONVEX_URL must start with https:// or http://') as info:
        open_store()
    assert SECRET not in str(info.value)


def test_invalid_number_never_echoes_values(monkeypatch):
    monkeypatch.setenv('CONVEX_DEPLOY_KEY', SECRET)
    monkeypatch.setenv('STRUCTURE_STORE_TIMEOUT', 'soon')
    with pytest.raises(ConfigurationError, match='STRUCTURE_STORE_TIMEOUT') as info:
        load_settings()
    assert SECRET not in str(info.value)
    assert 'soon' not in str(info.value)


def test_settings_repr_hides_the_key(monkeypatch):
    monkeypatch.setenv('CONVEX_URL', 'https://x.convex.cloud')
    monkeypatch.setenv('CONVEX_DEPLOY_KEY', SECRET)
    settings = load_settings()
    assert settings.convex_deploy_key.get_secret_value() == SECRET
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert SECRET not in text


def test_settings_file_is_read_and_environment_wins(monkeypatch, tmp_path):
    path = tmp_path / 'settings.env'
    path.write_text(f'STRUCTURE_STORE_BACKEND=memory\nCONVEX_URL=https://file.example\nCONVEX_DEPLOY_KEY={SECRET}\n')
    os.chmod(path, 0o600)
    monkeypatch.setenv('STRUCTURE_STORE_SETTINGS_FILE', str(path))
    monkeypatch.setenv('CONVEX_URL', 'https://env.example')
    settings = load_settings()
    assert settings.backend == 'memory'
    assert settings.convex_url == 'https://env.example'
    assert settings.convex_deploy_key.get_secret_value() == SECRET


def test_settings_file_readable_by_others_is_refused(monkeypatch, tmp_path):
    path = tmp_path / 'settings.env'
    path.write_text(f'CONVEX_DEPLOY_KEY={SECRET}\n')
    os.chmod(path, 0o644)
    monkeypatch.setenv('STRUCTURE_STORE_SETTINGS_FILE', str(path))
    with pytest.raises(ConfigurationError, match='chmod 600') as info:
        load_settings()
    assert SECRET not in str(info.value)


def test_missing_settings_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv('STRUCTURE_STORE_SETTINGS_FILE', str(tmp_path / 'nope.env'))
    with pytest.raises(ConfigurationError, match='does not exist'):
        load_settings()


def test_default_settings_file_in_home(tmp_path):
    path = tmp_path / '.config' / 'aiida-structstore' / 'settings.env'
    path.parent.mkdir(parents=True)
    path.write_text('STRUCTURE_STORE_BACKEND=memory\n')
    os.chmod(path, 0o600)
    assert isinstance(open_store(), MemoryStore)


def test_explicit_settings_object():
    assert isinstance(open_store(StoreSettings(backend='memory')), MemoryStore)
