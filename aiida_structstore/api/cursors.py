"""Opaque page cursors of the read API's list routes (``/api/structures``, ``/api/structures/{id}/executions``).

A cursor handed to a client is ``<payload>.<tag>``, both base64url without padding (letters, digits, ``-``, ``_``
and one dot: safe in a URL as it is). The payload is the store's own cursor, unchanged (its format is the store's
business); the tag is an HMAC-SHA256 (16 bytes) of the payload and of the listing it belongs to (route, tenant,
workspace, structure), so a cursor serves only the listing that issued it.

The HMAC key is derived from ``STRUCTURE_API_JWT_SECRET`` when one is set: cursors then cannot be forged. Without a
secret (JWKS only) the key is a fixed one: the tag still catches any change and binds the cursor to its listing,
but a determined client could forge one for its own listing; the store checks what it is given either way.

Whatever is wrong with a cursor (malformed, tampered, another listing's, or refused by the store) the answer is
400 with the fixed message :data:`BAD_CURSOR`: never the store's text (no Convex request id, no parser message).

This module imports no AiiDA module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from fastapi import HTTPException

__all__ = ('BAD_CURSOR', 'MAX_CURSOR_LENGTH', 'CursorCodec', 'bad_cursor', 'listing_of')

#: The longest cursor accepted, in characters.
MAX_CURSOR_LENGTH = 2048
BAD_CURSOR = 'invalid page cursor: pass the next_cursor of the previous page unchanged'
_CONTEXT = b'aiida-structstore read API page cursor v1'
_ALPHABET = frozenset('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_')
_TAG_BYTES = 16


def bad_cursor() -> HTTPException:
    """The one answer to any bad cursor."""
    return HTTPException(400, BAD_CURSOR)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode('ascii').rstrip('=')


def _decode(text: str) -> bytes:
    """Strict base64url without padding: anything else (or a non-canonical form) raises ``ValueError``."""
    if not text or not set(text) <= _ALPHABET:
        raise ValueError('not base64url')
    try:
        data = base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError('not base64url') from None
    if _encode(data) != text:
        raise ValueError('not canonical')
    return data


class CursorCodec:
    """Wraps the store's cursors for clients and unwraps them, checking the tag (see the module docstring)."""

    def __init__(self, secret: str | None = None) -> None:
        self._key = hashlib.sha256(_CONTEXT + b'\0' + (secret or '').encode('utf-8')).digest()

    def __repr__(self) -> str:
        return 'CursorCodec()'

    def _tag(self, listing: str, payload: bytes) -> bytes:
        message = listing.encode('utf-8') + b'\0' + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_TAG_BYTES]

    def wrap(self, store_cursor: str | None, listing: str) -> str | None:
        """The client's cursor for ``store_cursor`` of ``listing`` (``None`` stays ``None``: no more pages)."""
        if store_cursor is None:
            return None
        payload = store_cursor.encode('utf-8')
        return f'{_encode(payload)}.{_encode(self._tag(listing, payload))}'

    def unwrap(self, cursor: str | None, listing: str) -> str | None:
        """The store's cursor inside ``cursor``; raise :func:`bad_cursor` unless ``listing`` issued it unchanged."""
        if cursor is None:
            return None
        try:
            if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH or cursor.count('.') != 1:
                raise ValueError('malformed')
            payload_text, tag_text = cursor.split('.')
            payload, tag = _decode(payload_text), _decode(tag_text)
            if not hmac.compare_digest(tag, self._tag(listing, payload)):
                raise ValueError('tag')
            return payload.decode('utf-8')
        except (ValueError, UnicodeDecodeError):
            raise bad_cursor() from None


def listing_of(kind: str, *parts: str) -> str:
    """The name a cursor is bound to: the route's kind and the tenant, workspace, structure it lists."""
    return '\0'.join((kind, *parts))
