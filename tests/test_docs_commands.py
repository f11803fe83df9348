"""Every command the documentation shows is checked as written: README.md and docs/*.md, their ```bash blocks (each
line) and ```console blocks (each line starting with ``$ ``; the others are output).

What happens to a command line, by what it runs (the scheme is in docs/cli.md, "The commands in these pages"):

- ``verdi data structstore …``: parsed by the real click command (its options, their values' count, the
  arguments, the required options and the choices); not run, since it names nodes, groups and stores of the
  reader's own (``112``, ``-G mine``). The commands themselves are run against real profiles and stores in
  tests/cli and tests/executions.
- ``structstore-dev-token …``: run, with a throwaway secret, and the token it prints verified.
- ``structstore-api …``: parsed by its own argument parser (serving is tests/api/test_cli.py's part).
- ``structstore-optimade-get …``: parsed by its click command (tests/api/test_optimade.py runs it against the app).
- ``.venv/bin/python benchmarks/<script> …``: each option given must be one the script's ``--help`` lists (the
  scripts run end to end at small sizes in tests/test_benchmark_smoke.py).
- ``pip install …`` from the checkout: resolved by pip (``--dry-run``) in tests/test_install.py.
- everything else must be on the list :data:`NOT_RUN` below, with the reason it is not run here. A new command
  in the docs fails this test until it is checked or listed.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

import click
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]

#: Commands shown but not run here, by how they start, with the reason.
NOT_RUN = {
    'bash scripts/demo.sh': 'its --port and busy-port check run in tests/test_demo.py; the whole demo takes minutes',
    'bash scripts/setup.sh': 'installs (network, apt); CI runs it through .ci/run',
    'bash .ci/run': 'CI itself',
    'npm test': 'CI runs it (.ci/run)',
    'npm ci': 'installs; CI runs it (scripts/setup.sh)',
    'npx convex': 'needs a Convex account or the Convex CLI backend download',
    'CONVEX_DEPLOY_KEY=some-local-key npm': 'needs a local Convex backend (docs/convex-projection.md)',
    'CONVEX_URL=... CONVEX_DEPLOY_KEY=...': 'needs a Convex deployment',
    '.venv/bin/lint-imports': 'CI runs it (.ci/run)',
    '.venv/bin/pytest': 'the tests themselves',
    '.venv/bin/pip install': "installs another package (aiida-core's rest extra) from the network",
    'export ': 'sets the environment of the lines after it',
    'curl ': 'needs a running API; tests/api makes the same requests',
    'open ': 'opens a browser; tests/api/test_viewer.py drives the viewer',
    'xdg-open ': 'opens a browser; tests/api/test_viewer.py drives the viewer',
    'optimade-validator ': 'run against the live app in tests/api/test_optimade.py',
    'optimade-get ': 'run against the live app in tests/api/test_optimade.py',
    'pip install ': 'resolved from the checkout in tests/test_install.py',
    'npm run app-functions': 'run and its output checked in tests/devserver/test_component_layout.py',
    'python -m venv ': 'creates an environment; tests/test_install.py installs the package from the checkout',
    'chmod 600 structstore-modal.env': 'step 2 of docs/deploy.md, run as written in tests/api/test_modal_app.py',
    'python -m aiida_structstore.api.modal_app check': 'step 2 of docs/deploy.md, run as written in '
    'tests/api/test_modal_app.py',
    'modal ': 'needs a Modal account; tests/api/test_modal_app.py runs the deploy line offline up to "Token missing"',
    'STRUCTSTORE_MODAL_DOMAINS=': 'needs a Modal account (the domains are read offline in tests/api/test_modal_app.py)',
}
CHECKED = re.compile(
    r'(?<![\w./-])(?P<dollar>\$\()?(?P<command>verdi data structstore|structstore-dev-token|structstore-optimade-get'
    r'|structstore-api|\.venv/bin/python benchmarks/\S+)(?P<rest>.*)'
)


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    text: str

    def __str__(self) -> str:
        return f'{self.page}:{self.line}'


def examples() -> list[Example]:
    found = []
    for page in PAGES:
        lines = page.read_text(encoding='utf-8').splitlines()
        language = None
        continued = False  # the line before ended with a backslash: this one belongs to its command
        for number, line in enumerate(lines, 1):
            if line.startswith('```'):
                language = line[3:].strip() if language is None else None
                continue
            if continued:
                found[-1] = Example(found[-1].page, found[-1].line, f'{found[-1].text[:-1].rstrip()} {line.strip()}')
            elif language == 'console' and line.startswith('$ '):
                found.append(Example(page.name, number, line[2:].strip()))
            elif language == 'bash' and line.strip() and not line.lstrip().startswith('#'):
                found.append(Example(page.name, number, line.strip()))
            else:
                continue
            continued = found[-1].text.endswith('\\')
    return found


def arguments(example: Example) -> tuple[str, list[str]]:
    """The checked command of a line and its arguments, as the shell would pass them (placeholders such as
    ``<input structure pk>`` become ``1``; redirections, pipes, comments and the end of ``$(…)`` end it)."""
    match = CHECKED.search(example.text)
    assert match, f'{example}: no checked command in {example.text!r}'
    rest = re.sub(r'<[^<>]*>', '1', match['rest'])
    if match['dollar']:
        rest = rest.split(')', 1)[0]
    words = []
    for word in shlex.split(rest, comments=True):
        if word in ('|', '||', '&&', ';', '>', '>>', '2>') or word.startswith(('>', '2>')):
            break
        words.append(word)
    return match['command'], words


EXAMPLES = examples()


def test_the_pages_show_commands():
    assert len(EXAMPLES) > 40  # the extraction found the blocks (README.md and docs/cli.md alone have more)


@pytest.mark.parametrize('example', EXAMPLES, ids=str)
def test_each_command_is_checked_or_listed_with_a_reason(example):
    if not CHECKED.search(example.text):
        assert any(example.text.startswith(start) for start in NOT_RUN), (
            f'{example}: {example.text!r} is neither checked nor listed in NOT_RUN (tests/test_docs_commands.py)'
        )


def _click_parse(command: click.Command, words: list[str], path: str) -> None:
    """Parse ``words`` as click would for ``command`` (descending into groups), without converting values."""
    context = click.Context(command, info_name=path)
    if isinstance(command, click.Group):
        assert words, f'{path}: a subcommand is missing'
        name, *rest = words
        sub = command.get_command(context, name)
        assert sub is not None, f'{path}: no subcommand {name!r} (has: {", ".join(command.list_commands(context))})'
        _click_parse(sub, rest, f'{path} {name}')
        return
    try:
        values, extra, _ = command.make_parser(context).parse_args(list(words))
    except click.UsageError as exc:
        pytest.fail(f'{path} {shlex.join(words)}: {exc.format_message()}')
    assert not extra, f'{path}: unexpected arguments {extra}'
    for parameter in command.params:
        value = values.get(parameter.name)
        if parameter.required and value in (None, ()):
            pytest.fail(f'{path} {shlex.join(words)}: {parameter.name} is required')
        if isinstance(parameter.type, click.Choice) and value is not None:
            for item in value if isinstance(value, list | tuple) else [value]:
                assert item in parameter.type.choices, f'{path}: {item!r} is not one of {parameter.type.choices}'


def _argparse_parse(parser: argparse.ArgumentParser, words: list[str], example: Example) -> argparse.Namespace:
    parser.exit_on_error = False
    try:
        return parser.parse_args(words)
    except (argparse.ArgumentError, SystemExit) as exc:
        pytest.fail(f'{example}: {parser.prog} {shlex.join(words)}: {exc}')


@pytest.mark.parametrize('example', [e for e in EXAMPLES if CHECKED.search(e.text)], ids=str)
def test_each_checked_command_parses_as_written(example, monkeypatch, capsys):
    command, words = arguments(example)
    if command == 'verdi data structstore':
        from aiida_structstore.cli import cmd_structstore

        _click_parse(cmd_structstore, words, command)
    elif command == 'structstore-optimade-get':
        from aiida_structstore.api.optimade_get import _command

        _click_parse(_command(), words, command)
    elif command == 'structstore-api':
        from aiida_structstore.api.cli import _parser

        _argparse_parse(_parser(), words, example)
    elif command == 'structstore-dev-token':
        from aiida_structstore.api import ApiSettings, TokenVerifier
        from aiida_structstore.api.cli import _dev_token_parser, dev_token

        args = _argparse_parse(_dev_token_parser(), words, example)
        secret = 'a-throwaway-secret-for-this-test-only-0123456789'
        monkeypatch.setenv('STRUCTURE_API_JWT_SECRET', secret)
        dev_token(words)
        principal = TokenVerifier(ApiSettings(jwt_secret=secret)).verify(capsys.readouterr().out.strip())
        assert (principal.tenant_id, list(principal.workspaces)) == (args.tenant, args.workspace)
    else:
        script = ROOT / command.split(' ', 1)[1]
        assert script.is_file(), f'{example}: {script} does not exist'
        result = subprocess.run(
            [sys.executable, str(script), '--help'], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
        )
        assert result.returncode == 0, result.stderr[-2000:]
        for option in (word for word in words if word.startswith('--')):
            assert re.search(rf'(^|[\s,\[]){re.escape(option)}\b', result.stdout), (
                f'{example}: {script.name} has no {option}'
            )
