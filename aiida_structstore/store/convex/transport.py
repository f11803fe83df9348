"""The HTTP side of the Convex backend: calls, retries, pacing, error mapping, and keeping secrets out of sight.

Every call is ``POST {CONVEX_URL}/api/query|mutation`` with the function path, JSON arguments and the header
``Authorization: Convex <deploy key>`` (added by an ``httpx.Auth`` that holds the key as a ``SecretStr``). One
keep-alive ``httpx.Client`` per store.

Retries
    Connection errors, timeouts, malformed replies and HTTP 5xx (except 560, a function that failed) are retried
    with exponential backoff and jitter (tenacity), up to ``retries`` attempts. Every mutation the store sends is
    idempotent (see docs/convex-projection.md), so a retried mutation that had already run changes nothing.

Pacing
    Mutations are paced to the deployment's write throughput (Convex: 4 MiB/s by default) by a client-side budget;
    an HTTP 429 (``TooManyWrites``) halves the rate and is retried, slower, for up to ``throttle_patience`` seconds.
    A deployment never accepts a write larger than its budget (one with a lower budget than the client was told, or
    a batch whose JSON escapes made it larger than estimated), so a call its caller can send in parts
    (``divisible``) that is refused while larger than the halved rate raises :class:`WriteBudgetExceededError` at once:
    the caller splits it.

Replies
    A function's value is checked against its reply type (:mod:`.replies`) before it is returned: a value of another
    shape (another version of the functions, a proxy) is a :class:`BackendError` naming the function and what was
    wrong, not retried (the same call would get the same answer).

Secrets
    Neither the deploy key nor the URL appears in an error message, a log line or a ``repr``; errors are raised
    outside ``except`` blocks, so no chained exception keeps the HTTP library's frames (with the request and its
    ``Authorization`` header) alive.

This module imports no AiiDA module.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import re
import struct
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import tenacity
from convex.values import ConvexInt64, is_special_float
from pydantic import SecretStr, ValidationError

from ... import __version__
from ...core.exceptions import (
    BackendError,
    BackendUnavailableError,
    ClaimLostError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    StructStoreError,
)
from ...core.limits import CONVEX, PROTOCOL
from ..settings import check_deploy_key, check_function_prefix, check_url
from .replies import REPLIES, describe

__all__ = (
    'DEFAULT_WRITE_RATE',
    'MAX_REQUEST_BYTES',
    'ConvexTransport',
    'RequestTooLargeError',
    'WriteBudgetExceededError',
)

LOGGER = logging.getLogger('aiida_structstore.store.convex')
MODULE = 'structures'
#: A deployment's default write throughput (bytes per second); the client paces its mutations to it.
DEFAULT_WRITE_RATE = CONVEX['writeBytesPerSecond']
#: Largest arguments Convex accepts; a larger batch is split before it is sent.
MAX_REQUEST_BYTES = CONVEX['argumentBytes']

ERROR_CODES: dict[str, type[StructStoreError]] = {
    'INVALID_ARGUMENT': InvalidInputError,
    'LIMIT_EXCEEDED': LimitExceededError,
    'NOT_FOUND': NotFoundError,
    'CONFLICT': ConflictError,
    'INCOMPLETE_UPLOAD': ConflictError,
    'CLAIM_LOST': ClaimLostError,
}


DEPLOY_HINT = (
    'deploy the functions in convex/ to this deployment, as a component with its app-side functions under '
    'STRUCTURE_STORE_FUNCTION_PREFIX or standalone (docs/convex-projection.md)'
)


_FIELD_NAME = re.compile(r'[\x20-\x7e]{0,1024}')


def _decode(content: bytes) -> tuple[Any, list[str]]:
    """A reply's JSON as the convex package's ``json_to_convex`` decodes it (``$integer``, ``$float`` and
    ``$bytes`` values), in one pass of the C parser instead of a walk over every value and every character of every
    field name afterwards (about a tenth of an OPTIMADE page's time). Returns the value and what in it Convex never
    sends (a bare integer, a reserved or invalid field name, an unknown ``$`` value), in ``json_to_convex``'s words;
    ``ValueError`` if it is not JSON at all."""
    problems: list[str] = []

    def special(key: str, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f'Bad JSON value: {{{key!r}: {value!r}}}')
        data = base64.standard_b64decode(value)
        if key == '$bytes':
            return data
        if key == '$integer':
            return ConvexInt64(struct.unpack('<q', data)[0])
        (number,) = struct.unpack('<d', data)
        if not is_special_float(number):
            raise ValueError(f'Not a special float: {number}')
        return number

    def hook(obj: dict[str, Any]) -> Any:
        if len(obj) == 1:
            key = next(iter(obj))
            if key in ('$bytes', '$integer', '$float'):
                try:
                    return special(key, obj[key])
                except (ValueError, TypeError, struct.error, binascii.Error) as exc:
                    problems.append(str(exc))
                    return obj
        for key in obj:
            if key.startswith('$') or _FIELD_NAME.fullmatch(key) is None:
                problems.append(
                    f'Bad JSON value: field name {key[:80]!r}'
                    if not key.startswith('$')
                    else f'Bad JSON value: {obj!r}'[:200]
                )
                break
        return obj

    def bare_integer(text: str) -> int:
        problems.append(f'Bad JSON value: {text[:40]}')
        return int(text)

    return json.loads(content, object_hook=hook, parse_int=bare_integer), problems


class _DeployKeyAuth(httpx.Auth):
    """Adds ``Authorization: Convex <deploy key>`` to each request; the key is held as a :class:`SecretStr`."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request):
        request.headers['Authorization'] = f'Convex {self._key.get_secret_value()}'
        yield request

    def scrub(self, text: str) -> str:
        return text.replace(self._key.get_secret_value(), '<CONVEX_DEPLOY_KEY>')

    def __repr__(self) -> str:
        return '_DeployKeyAuth(**********)'


class RequestTooLargeError(LimitExceededError):
    """A request body larger than Convex accepts; raised before anything is sent."""

    def __init__(self, size: int) -> None:
        super().__init__(f'a request of {size} bytes is larger than Convex accepts ({MAX_REQUEST_BYTES} bytes)')


class WriteBudgetExceededError(BackendError):
    """A divisible mutation of ``size`` bytes that the deployment refused as over its write throughput (HTTP 429)
    while larger than the rate the client now paces to: the caller sends it in smaller parts."""

    def __init__(self, path: str, size: int) -> None:
        message = f"{path}: a write of {size} bytes is over the deployment's write throughput"
        super().__init__(message, code='TooManyWrites')
        self.size = size


class _WritePacer:
    """A client-side write budget: ``limit`` bytes per second on average, with a one-second burst. A write larger
    than the budget at hand waits until the budget is full, then overdraws it (the next write waits longer). A 429
    from the deployment halves the rate (down to a sixteenth of the limit); each successful write wins back a
    sixteenth of the limit."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.rate = limit
        self.tokens = limit
        self.last = time.monotonic()
        self.waited = 0.0  # seconds spent waiting, for benchmarks

    def wait(self, size: int) -> None:
        if not self.limit:
            return
        while True:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
            self.last = now
            need = min(size, self.rate)
            if self.tokens >= need:
                self.tokens -= size
                return
            pause = (need - self.tokens) / self.rate
            self.waited += pause
            time.sleep(pause)

    def throttled(self) -> None:
        if self.limit:
            self.rate = max(self.limit / 16, self.rate / 2)
            self.tokens = min(self.tokens, 0.0)

    def over_budget(self, size: int) -> None:
        """A write of ``size`` bytes was refused: the deployment's budget is probably below it. Pace to half of it."""
        self.rate = max(self.limit / 16, min(self.rate, size / 2))
        self.tokens = min(self.tokens, 0.0)

    def succeeded(self) -> None:
        if self.limit:
            self.rate = min(self.limit, self.rate + self.limit / 16)


class _TransientError(Exception):
    """A transient failure (transport error, 429, 5xx): the call may be repeated."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class _ThrottledError(_TransientError):
    """HTTP 429: the deployment is over its write throughput. Repeated, slower, for up to ``throttle_patience``."""


class _OverBudgetError(Exception):
    """HTTP 429 for a divisible write larger than the halved rate: not repeated, the caller splits it."""


class ConvexTransport:
    """Calls the functions of ``convex/structures.ts`` and ``convex/executions.ts`` on one deployment (see the module
    docstring)."""

    def __init__(
        self,
        url: str,
        deploy_key: SecretStr | str,
        *,
        timeout: float = 30.0,
        retries: int = 6,
        backoff_max: float = 8.0,
        allow_http: bool = False,
        write_rate: float = DEFAULT_WRITE_RATE,
        throttle_patience: float = 300.0,
        transport: httpx.BaseTransport | None = None,
        function_prefix: str = '',
    ) -> None:
        self.url = check_url(url, allow_http=allow_http)
        #: ``''`` (the standalone layout) or ``<name>/`` (the app-side functions of the component mounted as ``name``)
        self.function_prefix = check_function_prefix(function_prefix)
        self._auth = _DeployKeyAuth(check_deploy_key(deploy_key))
        self.retries = retries
        self.backoff_max = backoff_max
        self.calls = 0  # Convex function calls made (not counting retries), for benchmarks and tests
        self.pacer = _WritePacer(write_rate)
        self.throttle_patience = throttle_patience
        self._client = httpx.Client(
            base_url=self.url,
            auth=self._auth,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=30.0),
            transport=transport,
            headers={'Content-Type': 'application/json', 'Convex-Client': f'aiida-structstore-{__version__}'},
        )

    def close(self) -> None:
        self._client.close()

    def _scrub(self, text: str) -> str:
        """``text`` (from the HTTP library or the server) without the deploy key or the deployment URL."""
        return self._auth.scrub(text).replace(self.url, '<CONVEX_URL>')

    def content_hashes(
        self, name: str, tenant_id: str, workspace_id: str, field: str, ids: Sequence[str], *, module: str = MODULE
    ) -> dict[str, str]:
        """``{id: content_hash}`` from the query ``<module>:<name>``, asked for ``ids`` (argument ``field``) at most
        ``maxHashIds`` at a time (the functions' own limit); each reply item names its id by ``field`` less its
        plural ``s``."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(ids))
        step = PROTOCOL['maxHashIds']
        for start in range(0, len(unique), step):
            args = {'tenant_id': tenant_id, 'workspace_id': workspace_id, field: unique[start : start + step]}
            reply = self.call('query', name, args, module=module)
            found.update({item[field[:-1]]: item['content_hash'] for item in reply})
        return found

    @contextlib.contextmanager
    def reading(self, path: str) -> Iterator[None]:
        """Turn a record of ``path``'s reply that the client's models refuse (an invalid id, a summary or payload
        that is not what this version writes) into :meth:`wrong_reply`."""
        problem = None
        try:
            yield
        except ValidationError as exc:
            problem = f'a record in it is not valid: {describe(exc)}'
        except ValueError as exc:  # InvalidInputError (an id), JSON text that does not decode
            problem = f'a record in it is not valid: {" ".join(str(exc).split())[:200]}'
        if problem is not None:
            raise self.wrong_reply(path, problem)

    def wrong_reply(self, path: str, problem: str) -> BackendError:
        """The error for a reply of ``path`` that does not fit what was asked (``problem`` says how)."""
        return BackendError(
            f'{path} answered with a reply of an unexpected shape ({self._scrub(problem)}); is this deployment '
            f'running the functions of this version? {DEPLOY_HINT}',
            code='UnexpectedReply',
        )

    def call(self, kind: str, name: str, args: dict[str, Any], *, module: str = MODULE, divisible: bool = False) -> Any:
        """Call ``<module>:<name>`` (default ``structures``) and return its decoded value, retrying transient
        failures. ``divisible``: the caller can send these arguments in parts, so a write over the deployment's
        budget raises :class:`WriteBudgetExceededError` instead of being repeated."""
        path = f'{self.function_prefix}{module}:{name}'
        # The arguments this package builds are JSON values whose numbers are already floats and whose keys are
        # plain names, which is their convex_encoded_json form: they are written as they are (the convex package's
        # encoder, which checks every value again, was a fifth of a sync's time).
        try:
            body = json.dumps(
                {'path': path, 'args': args, 'format': 'convex_encoded_json'},
                ensure_ascii=False,
                separators=(',', ':'),
                allow_nan=False,
            ).encode('utf-8')
        except ValueError as exc:
            raise InvalidInputError(f'arguments of {path} are not JSON: {exc}') from None
        if len(body) > MAX_REQUEST_BYTES:
            raise RequestTooLargeError(len(body))
        self.calls += 1
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_TransientError),
            stop=self._stop,
            wait=tenacity.wait_random_exponential(multiplier=0.1, max=self.backoff_max),
            reraise=True,
            before_sleep=lambda state: self._log_retry(path, state),
        )
        failure = None
        try:
            return retrying(self._post, kind, path, body, divisible)
        except _TransientError as exc:
            failure = str(exc)
        except _OverBudgetError:
            pass
        if failure is None:  # over the budget: the caller splits it
            raise WriteBudgetExceededError(path, len(body))
        # Raised outside the except block: no chained exception keeps the HTTP library's frames alive.
        attempts = retrying.statistics.get('attempt_number', self.retries)
        raise BackendUnavailableError(
            f'the Convex deployment (CONVEX_URL) failed for {path} after {attempts} attempts: {failure}'
        )

    def _log_retry(self, path: str, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _ThrottledError):
            LOGGER.info('Convex call %s: %s (now %.1f MiB/s)', path, error, self.pacer.rate / 2**20)
            return
        LOGGER.warning(
            'Convex call %s failed (%s); retrying (attempt %d of %d)',
            path,
            error,
            state.attempt_number + 1,
            self.retries,
        )

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        """Give up after ``retries`` attempts; while the deployment only says it is over its write throughput (the
        pacer slows down each time), after ``throttle_patience`` seconds instead."""
        if state.outcome is not None and isinstance(state.outcome.exception(), _ThrottledError):
            return state.seconds_since_start > self.throttle_patience
        return state.attempt_number >= self.retries

    def _send(self, kind: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` to ``/api/<kind>``; return status and body. No request object (it holds the
        ``Authorization`` header) outlives this call, and no HTTP library exception is chained to ours."""
        failure = None
        try:
            # Not `response.content`: an httpx response and its stream refer to each other, so a body cached on the
            # response lives until the cyclic garbage collector runs (tens of MB while a raw input is read).
            with self._client.stream('POST', f'/api/{kind}', content=body) as response:
                return response.status_code, b''.join(response.iter_bytes())
        except httpx.LocalProtocolError:
            # The request could not be formed (an invalid header): not transient, and httpx quotes the header.
            failure = 'config'
        except httpx.TransportError as exc:  # connect/read/write errors and timeouts
            failure = self._scrub(f'{type(exc).__name__}: {exc}')
        if failure == 'config':
            raise ConfigurationError(
                'the HTTP request to Convex could not be formed: check CONVEX_URL and CONVEX_DEPLOY_KEY for spaces '
                'or control characters'
            )
        raise _TransientError(failure)

    def _post(self, kind: str, path: str, body: bytes, divisible: bool = False) -> Any:
        if kind == 'mutation':
            self.pacer.wait(len(body))
        status, content = self._send(kind, body)
        if status == 429:
            if divisible and self.pacer.limit and len(body) > self.pacer.rate / 2:
                # Most likely refused for its size, which no rate makes acceptable: the caller splits it.
                self.pacer.over_budget(len(body))
                LOGGER.info('Convex call %s: %d bytes over the write throughput; sending it in parts', path, len(body))
                raise _OverBudgetError()
            self.pacer.throttled()
            raise _ThrottledError('HTTP 429 (the deployment is over its write throughput; writing slower)')
        if status >= 500 and status != 560:
            raise _TransientError(f'HTTP {status}')
        if kind == 'mutation':
            self.pacer.succeeded()
        try:
            reply, problems = _decode(content)
        except (ValueError, RecursionError):
            reply, problems = None, []
        if status in (200, 560) and not (isinstance(reply, dict) and reply.get('status') in ('success', 'error')):
            # A reply cut or garbled on the way (a proxy, a dropped connection): whether the function ran is
            # unknown, and every call is idempotent, so it is repeated.
            raise _TransientError(f'HTTP {status} with a malformed reply')
        if status == 200 and reply['status'] == 'success':
            if 'value' not in reply:
                raise _TransientError(f'HTTP {status} with a malformed reply')
            return self._value(path, reply['value'], problems)
        if status in (200, 560):
            raise self._function_error(path, reply)
        code = reply.get('code') if isinstance(reply, dict) else None
        message = self._scrub(str(reply.get('message'))) if isinstance(reply, dict) else None
        if status in (401, 403):
            raise ConfigurationError(f'the Convex deployment rejected the deploy key ({code}): check CONVEX_DEPLOY_KEY')
        if status == 404:
            raise BackendError(f'{path} is not deployed ({code}); {DEPLOY_HINT}', code=code)
        if status == 413:
            raise LimitExceededError(f'the request to {path} is larger than Convex accepts (HTTP 413)')
        raise BackendError(f'Convex returned HTTP {status} for {path}: {code}: {message}', code=code)

    def _value(self, path: str, decoded: Any, problems: list[str]) -> Any:
        """The decoded value of a successful call of ``path`` (``problems``: what :func:`_decode` found that
        Convex never sends), checked against its reply type."""
        problem = None
        if problems:
            problem = f'not a Convex value: {" ".join(problems[0].split())[:200]}'
        else:
            shape = REPLIES.get(path.removeprefix(self.function_prefix))
            if shape is None:
                return decoded
            try:
                return shape.validate_python(decoded)
            except ValidationError as exc:
                problem = describe(exc)
        raise self.wrong_reply(path, problem)

    def _function_error(self, path: str, reply: dict[str, Any]) -> StructStoreError:
        """The error of a function that failed (HTTP 200 or 560 with ``status: error``)."""
        data = reply.get('errorData')
        message = self._scrub(str(reply.get('errorMessage', 'unknown error')))
        if isinstance(data, dict) and 'code' in data:
            error_class = ERROR_CODES.get(str(data['code']), BackendError)
            detail = self._scrub(str(data.get('message', message)))
            if error_class is BackendError:
                return BackendError(f'{path}: {detail}', code=str(data['code']))
            return error_class(detail)
        if 'Could not find public function' in message or 'Could not find function' in message:
            # A real deployment answers HTTP 200 for a function that is missing or of another kind.
            return BackendError(f'{path} is not deployed: {message}; {DEPLOY_HINT}', code='FunctionNotFound')
        return BackendError(f'{path} failed: {message}')
