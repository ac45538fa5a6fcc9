# GPL-3.0-or-later
"""Keep secrets out of run records, reports and artifacts.

Two passes, used by the run-record callback and by the ``rollbackctl`` wrapper alike:

* by name: the value of any key that looks like a secret (``webhook_token``,
  ``db_password``, ``ROLLBACK_WEBHOOK_URL``...) is replaced by ``********``;
* by value: the values of secret-looking environment variables and extra vars are
  replaced wherever they appear inside other text (an error message that quotes a URL, a
  command line, a log line);
* in URLs: the credentials of any URL inside any text (``http://user:password@host``,
  ``postgresql://app:pw@db/app``) and the values of token-like query parameters
  (``?token=``, ``access_token``, ``api_key``, ``sig``...) are masked, whatever the
  variable the URL came from (``release_repo``, a health or webhook URL, a DSN).

Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"

SECRET_NAME = re.compile(
    r"pass|secret|token|key|credential|auth|cookie|webhook|dsn|private", re.IGNORECASE
)
"""A key or variable name whose value is treated as a secret."""

MIN_SECRET_LENGTH = 6
"""Shorter values are not hunted for inside other text: ``true`` or ``1`` would mask half
of a record. Values under a secret-looking key are masked whatever their length."""


URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#@'\"<>]+)@")
"""``scheme://userinfo@``: the userinfo (``user:password``, or a bare token) is credentials."""

SECRET_QUERY = re.compile(
    r"(?P<name>[?&;](?:[A-Za-z0-9_.-]*[_.-])?(?:token|access_token|api_?key|apikey|key|"
    r"password|passwd|pwd|secret|sig|signature|auth|authorization|credential|credentials|"
    r"client_secret|private_token)=)(?P<value>[^&#\s'\"<>]+)",
    re.IGNORECASE,
)
"""A query parameter whose value is a credential (``?token=...``, ``&X-Amz-Signature=...``)."""


def mask_urls(text: str) -> str:
    """``text`` with the credentials of every URL in it masked: the userinfo as
    ``********@`` (the user too: a bare token often sits there) and the values of
    token-like query parameters."""
    if "@" in text:
        text = URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    if "=" in text:
        text = SECRET_QUERY.sub(lambda m: f"{m.group('name')}{MASK}", text)
    return text


def is_secret_name(name: Any) -> bool:
    return bool(SECRET_NAME.search(str(name)))


def secret_values(variables: Mapping[Any, Any] | None) -> set[str]:
    """The values of secret-looking names (environment, extra vars), long enough to hunt."""
    found: set[str] = set()
    for name, value in (variables or {}).items():
        if not is_secret_name(name):
            continue
        for text in _texts(value):
            if len(text) >= MIN_SECRET_LENGTH:
                found.add(text)
    return found


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


class Redactor:
    """Masks secrets in plain data (dicts, lists, strings) and in text."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        # Longest first: a secret that contains another one is masked whole.
        self.values = sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len)[::-1]

    def add(self, values: Iterable[str]) -> None:
        self.values = sorted(
            {*self.values, *(v for v in values if len(v) >= MIN_SECRET_LENGTH)}, key=len
        )[::-1]

    def text(self, value: str) -> str:
        for secret in self.values:
            if secret in value:
                value = value.replace(secret, MASK)
        return mask_urls(value)

    def data(self, value: Any, by_name: bool = True) -> Any:
        """A copy of ``value`` with secrets masked; ``by_name`` also masks whole values of
        secret-looking keys."""
        if isinstance(value, Mapping):
            return {
                key: MASK
                if by_name and is_secret_name(key) and item not in (None, "", [], {})
                else self.data(item, by_name)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.data(item, by_name) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def found_in(self, text: str) -> bool:
        return any(secret in text for secret in self.values) or mask_urls(text) != text
