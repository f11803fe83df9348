"""Inputs and input checks shared by the work chains (ports declared once; ``spec.inputs.validator`` helpers)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiida import orm

from ..core.exceptions import InvalidInputError
from ..core.values import validate_id


def invalid_id(values: Iterable[tuple[str, str]]) -> str | None:
    """The message of the first invalid id among ``(what, value)`` pairs, or ``None``."""
    for what, value in values:
        try:
            validate_id(value, what)
        except InvalidInputError as exc:
            return str(exc)
    return None


def target_ids(inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The ``tenant_id`` and ``workspace_id`` inputs present, as ``(name, value)`` pairs."""
    return [(name, inputs[name].value) for name in ('tenant_id', 'workspace_id') if name in inputs]


def target_inputs(spec: Any) -> None:
    """Declare the ``tenant_id`` and ``workspace_id`` inputs of a projection's target."""
    spec.input('tenant_id', valid_type=orm.Str, help='Tenant id of the target.')
    spec.input('workspace_id', valid_type=orm.Str, help='Workspace id of the target.')


def include_raw_input(spec: Any) -> None:
    """Declare the ``include_raw`` input."""
    spec.input(
        'include_raw',
        valid_type=orm.Bool,
        default=lambda: orm.Bool(True),
        help='Project the raw file of imported structures too.',
    )
