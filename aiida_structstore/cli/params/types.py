"""Click parameter types."""

import click

from ...core.exceptions import InvalidInputError
from ...core.values import validate_id


class IdentifierType(click.ParamType):
    """A tenant, workspace or structure id (ASCII letters, digits, ``_-.``; 1 to 128 characters)."""

    name = 'identifier'

    def __init__(self, what: str = 'id') -> None:
        self.what = what

    def convert(self, value, param, ctx):
        try:
            return validate_id(value, self.what)
        except InvalidInputError as exc:
            self.fail(str(exc), param, ctx)


class JsonType(click.ParamType):
    """A JSON object given on the command line."""

    name = 'json'

    def convert(self, value, param, ctx):
        import json

        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            self.fail(f'not valid JSON: {exc}', param, ctx)
        if not isinstance(parsed, dict):
            self.fail('must be a JSON object', param, ctx)
        return parsed
