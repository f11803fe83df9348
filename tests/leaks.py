"""Find secrets where they could leak: exception text, chained exceptions and the locals of their frames."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import httpx

TESTS = pathlib.Path(__file__).resolve().parent


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend([current.__cause__, current.__context__])


def _texts_of(value: object) -> Iterator[str]:
    yield repr(value)
    if isinstance(value, (httpx.Request, httpx.Response)):
        value = value.headers if isinstance(value, httpx.Request) else value.request.headers
    if isinstance(value, httpx.Headers):
        yield from (v.decode('latin-1') for _, v in value.raw)
    elif isinstance(value, (bytes, bytearray)):
        yield bytes(value).decode('latin-1')
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f'{key!r}: {item!r}'


def leaks(exc: BaseException, *secrets: str, frames: bool = True) -> list[str]:
    """Where any of ``secrets`` appears: the text of ``exc`` and of every exception chained to it, and the locals
    (with HTTP requests' raw header values) of every frame of their tracebacks outside the tests (unless ``frames``
    is false: a misconfigured value is necessarily a local of the code that checks it)."""
    found = []
    for item in exception_chain(exc):
        if any(s in str(item) for s in secrets):
            found.append(f'{type(item).__name__} text')
        tb = item.__traceback__ if frames else None
        while tb is not None:
            frame = tb.tb_frame
            if pathlib.Path(frame.f_code.co_filename).is_relative_to(TESTS):
                tb = tb.tb_next
                continue  # the test's own frames hold the secrets it looks for
            for name, value in frame.f_locals.items():
                if any(s in text for text in _texts_of(value) for s in secrets):
                    found.append(f'{type(item).__name__}: {frame.f_code.co_name}() local {name}')
            tb = tb.tb_next
    return found
