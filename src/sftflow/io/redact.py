"""Keep credentials out of everything sftflow writes or prints.

A backend that reads a key (from an environment variable, or from the user info or
query string of a base URL) registers it here; every writer of run files (manifests,
JSONL outputs, dead letters, append-only logs, caches) and every error text a backend
produces passes through ``scrub``. Registering in one place is what makes this hold
for paths nobody thought of: ``sys.argv`` in a manifest, a config echoed into a
report, a server's 401 body quoting the header back.

A key is also registered in the forms it takes inside other people's error texts: a
value with a trailing ``\\r\\n`` (from a Windows ``.env`` file) shows up escaped, as
``repr`` of the header bytes, in the HTTP client's "Illegal header value" error.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameter names that carry credentials in the APIs people point sftflow at
# (Azure's api-key, Gemini's key, signed URLs' sig/signature, bearer tokens).
SECRET_PARAMS = {"key", "api_key", "api-key", "apikey", "token", "access_token", "auth", "secret",
                 "password", "sig", "signature", "x-api-key"}
# Shorter values are not treated as secrets: masking "a" would mangle every text.
MIN_SECRET_LENGTH = 6
_USERINFO = re.compile(r"(?<=://)[^/\s@]+@")

_lock = threading.Lock()
_secrets: set[str] = set()


def _forms(value: str) -> set[str]:
    stripped = value.strip()
    forms = {value, stripped, repr(value)[1:-1], repr(value.encode("utf-8", "replace"))[2:-1]}
    return {f for f in forms if len(f.strip()) >= MIN_SECRET_LENGTH}


def register_secret(value: str | None) -> None:
    """Never write ``value`` (nor its stripped or escaped forms) anywhere from now on."""
    if not value:
        return
    with _lock:
        _secrets.update(_forms(value))


def registered() -> bool:
    return bool(_secrets)


def scrub(text: str) -> str:
    """``text`` with every registered secret and every URL's user info masked."""
    if not isinstance(text, str):
        return text
    if "@" in text and "://" in text:
        text = _USERINFO.sub(MASK + "@", text)
    if not _secrets:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)   # longest first: "k\r\n" before "k"
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


def scrub_obj(obj: Any) -> Any:
    """``scrub`` applied to every string inside dicts, lists and tuples (keys included)."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {scrub_obj(k): scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_obj(v) for v in obj]
    return obj


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries: the user info's password (or lone user) and secret query values."""
    parts = urlsplit(url)
    found = []
    if parts.password:
        found.append(parts.password)
    elif parts.username:
        found.append(parts.username)
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in SECRET_PARAMS and v]
    return found


def redact_url(url: str) -> str:
    """``url`` fit to show: user info and secret query values replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        query = urlencode([(k, MASK if k.lower() in SECRET_PARAMS else v)
                           for k, v in parse_qsl(query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
