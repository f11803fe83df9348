"""The conformance cases shared with the TypeScript port of the evaluator are up to date (see filter_cases.py)."""

from __future__ import annotations

import json

from . import filter_cases


def test_the_committed_cases_are_what_the_python_evaluator_gives():
    committed = filter_cases.PATH.read_text(encoding='ascii')
    assert committed == filter_cases.render(), (
        'convex/testdata/filter_cases.json is out of date: run '
        '`PYTHONPATH=. .venv/bin/python -m tests.api.filter_cases` and commit it'
    )


def test_the_cases_cover_matches_and_non_matches_of_compiled_filters():
    data = json.loads(filter_cases.PATH.read_text(encoding='ascii'))
    compiled = [row for item, row in zip(data['queries'], data['expected'], strict=True) if item['filter']]
    assert len(compiled) == len(filter_cases.FILTERS)
    cells = ''.join(data['expected'])
    assert cells.count('1') > 100 and cells.count('0') > 100
    assert any(not item['valid'] for item in data['checked']) and any(item['valid'] for item in data['checked'])
