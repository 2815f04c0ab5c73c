"""A spec as a short URL-safe token (for links that reopen the same network), and back.

The token is zlib-compressed JSON in URL-safe base64. Anything can arrive in a URL, so
decoding is defensive: size limits before and after decompression, and full validation.
"""
from __future__ import annotations

import base64
import binascii
import json
import zlib

from cnnviz.errors import Problem, SpecError
from cnnviz.specs import spec_from_json, spec_to_dict

MAX_TOKEN_CHARS = 20_000
MAX_JSON_BYTES = 200_000


def spec_to_token(spec) -> str:
    return text_to_token(json.dumps(spec_to_dict(spec), separators=(",", ":")))


def text_to_token(text: str | bytes) -> str:
    """Any text packed as a link's token (a spec's JSON, or for tests, anything at all)."""
    data = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(zlib.compress(data, 9)).decode().rstrip("=")


def spec_from_token(token: str):
    if len(token) > MAX_TOKEN_CHARS:
        raise SpecError([Problem("", "the network in the link is too long")])
    try:
        packed = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_",
                                  validate=True)
        inflater = zlib.decompressobj()
        text = inflater.decompress(packed, MAX_JSON_BYTES + 1)
    except (binascii.Error, ValueError, zlib.error):
        raise SpecError([Problem("", "the network in the link is damaged")]) from None
    if len(text) > MAX_JSON_BYTES or inflater.unconsumed_tail:
        raise SpecError([Problem("", "the network in the link is too large")])
    if not inflater.eof:
        raise SpecError([Problem("", "the network in the link is damaged")])
    return spec_from_json(text)
