"""Which client a token request claims to be, and by which one method (RFC 6749 §2.3).

A client authenticates with HTTP Basic (`client_secret_basic`) or with `client_id` and
`client_secret` form fields (`client_secret_post`), never both: RFC 6749 §2.3 forbids a
second method in one request, so a request that mixes them is `400 invalid_request`
rather than silently picking one. A Basic request may repeat its own `client_id` as a
form field (some client libraries do); a form `client_id` naming another client is refused.

The Authorization header is parsed from its raw bytes: Basic credentials are base64 of
UTF-8 (RFC 7617 §2.1) whose id and secret are form-urlencoded first (RFC 6749 §2.3.1).
Anything else (bytes outside base64, not UTF-8, no colon, an empty part) is a failed
client authentication, `401 invalid_client`, never an exception.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote

from authlib.oauth2.rfc6749.errors import (  # type: ignore[import-untyped]
    InvalidClientError,
    InvalidRequestError,
)

BASIC = "client_secret_basic"
POST = "client_secret_post"

MALFORMED_BASIC = "The HTTP Basic credentials are not base64 of UTF-8 'client_id:secret'."
NO_CREDENTIALS = "Send client credentials: HTTP Basic, or client_id and client_secret."
AUTH_FAILED = "Client authentication failed: unknown client, wrong secret, or revoked."
TWO_METHODS = "Use one client authentication method, not two."
OTHER_CLIENT = "The client_id parameter names another client than the Basic credentials."
TWO_HEADERS = "Send one Authorization header."


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """The id and secret a token request presented, and the method it used."""

    client_id: str
    client_secret: str
    method: str  # BASIC or POST


def presented_client(authorization: list[bytes], form: dict[str, str]) -> ClientCredentials:
    """The one set of client credentials of a token request; raises the OAuth error."""
    basic = [v for v in authorization if v[:6].lower() == b"basic "]
    if len(basic) > 1:
        raise InvalidRequestError(TWO_HEADERS)
    form_id, form_secret = form.get("client_id", ""), form.get("client_secret", "")
    if basic:
        if "client_secret" in form:
            raise InvalidRequestError(TWO_METHODS)
        client_id, secret = basic_credentials(basic[0])
        if form_id and form_id != client_id:
            raise InvalidRequestError(OTHER_CLIENT)
        return ClientCredentials(client_id, secret, BASIC)
    if form_id and form_secret:
        return ClientCredentials(form_id, form_secret, POST)
    raise InvalidClientError(status_code=401, description=NO_CREDENTIALS)


def basic_credentials(header: bytes) -> tuple[str, str]:
    """(client id, secret) of an `Authorization: Basic ...` value, or invalid_client."""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        raise InvalidClientError(status_code=401, description=MALFORMED_BASIC) from None
    client_id, colon, secret = decoded.partition(":")
    client_id, secret = unquote(client_id), unquote(secret)
    if not colon or not client_id or not secret:
        raise InvalidClientError(status_code=401, description=MALFORMED_BASIC)
    return client_id, secret
