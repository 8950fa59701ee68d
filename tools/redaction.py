"""Secrets never leave the process in text: one pattern set for the audit trail, logs and user-facing errors.

``redact_text`` replaces anything that looks like a Slack token (bot, user, app-level, refresh), an OpenAI
or Anthropic key, an AWS access key id, a bearer token, a ``password=`` / ``secret_access_key=`` /
``signing_secret=`` assignment and the password of a URL (``postgresql://user:password@host``) with
``[redacted]``.
"""

from __future__ import annotations

import re

REDACTED = "[redacted]"

_SECRETS = re.compile(
    r"(xox[abposre][-.][A-Za-z0-9.-]+|xapp-[A-Za-z0-9-]+|sk-[A-Za-z0-9_-]{8,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|(?i:secret_access_key|signing_secret|password)\s*[=:]\s*\S+)"
)
#: a password in a URL (postgresql://user:password@host): the password only
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]+):([^@/\s]+)@")


def redact_text(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``[redacted]``."""
    return _URL_PASSWORD.sub(rf"\1:{REDACTED}@", _SECRETS.sub(REDACTED, text))
