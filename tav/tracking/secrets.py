"""Keep API keys and database passwords out of everything a run saves (configs, logs, W&B files)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

MASK = "***"

# Whole words of a key name that mark its value secret ("tokenizer" and "max_tokens" are not).
_SECRET_WORDS = {"password", "passwd", "pwd", "secret", "token", "apikey", "credential", "credentials"}
_SECRET_RUNS = ("apikey", "accesskey", "privatekey", "secretkey", "password")
_SECRET_ENV = re.compile(r"API_?KEY|TOKEN|PASSWORD|PASSWD|SECRET", re.IGNORECASE)
# Shorter environment values would mask ordinary text ("1", "true") everywhere.
_MIN_ENV_SECRET = 6

# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)([^@\s/]+)(@)")
# "password=...", "api_key: ...", "?token=..." inside free text (command lines, error messages)
_ASSIGNED = re.compile(r"(\b[\w.\-]*?(?:password|passwd|secret|token|api_?key)\s*[=:]\s*)([^\s,;'\"&]+)",
                       re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """True for key names such as api_key, WANDB_API_KEY, db.password, hf_token, client_secret."""
    lower = key.lower()
    parts = set(re.split(r"[^a-z0-9]+", lower))
    compact = re.sub(r"[^a-z0-9]", "", lower)
    return bool(parts & _SECRET_WORDS) or any(run in compact for run in _SECRET_RUNS)


def secret_env_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Current values of *_API_KEY, *_TOKEN, *PASSWORD*, *SECRET* environment variables, longest first."""
    environ = os.environ if environ is None else environ
    values = {v for k, v in environ.items() if _SECRET_ENV.search(k) and len(v) >= _MIN_ENV_SECRET}
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, env_secrets: list[str] | None = None) -> str:
    """Mask URL passwords, `secret=value` assignments and literal secret environment values in `text`."""
    for value in secret_env_values() if env_secrets is None else env_secrets:
        text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text)
    return _ASSIGNED.sub(rf"\g<1>{MASK}", text)


def redact(obj: Any, env_secrets: list[str] | None = None) -> Any:
    """A copy of `obj` (dicts, lists, strings, paths, scalars) with every secret masked; paths become strings."""
    env_secrets = secret_env_values() if env_secrets is None else env_secrets
    if isinstance(obj, Mapping):
        return {k: MASK if is_secret_key(str(k)) and v is not None else redact(v, env_secrets)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v, env_secrets) for v in obj]
    if isinstance(obj, (str, Path)):
        return redact_text(str(obj), env_secrets)
    return obj


def redacted_error(error: BaseException) -> str:
    """"Type: first line of the message", secrets masked: an error as one log line."""
    return redact_text(f"{type(error).__name__}: {error}".splitlines()[0])
