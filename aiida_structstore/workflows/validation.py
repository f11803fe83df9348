"""Input checks shared by the work chains' ``spec.inputs.validator`` functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import InvalidInputError
from ..models import validate_id


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
