"""The original export, kept only encrypted: zlib-compressed JSON inside a Fernet token.

``decrypt_export(encrypt_text(original_json(export), key), key)`` gives the export back
exactly (same dict, key order included). Keys are Fernet keys (``Fernet.generate_key()``); several, comma separated,
allow rotation: the first encrypts, any decrypts. ``resolve_encryption_key`` finds the key
in the environment or an Airflow Variable; callers pass it in, so nothing here needs Airflow.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from typing import Any

from cryptography.fernet import Fernet, MultiFernet

from zuora import settings

log = logging.getLogger(__name__)

KEY_VARIABLE = settings.ENCRYPTION_KEY_VARIABLE
KEY_ENV = settings.ENCRYPTION_KEY_ENV


def original_json(export: Any) -> str:
    """The exact text form of an export that ``decrypt_export`` gives back as the same dict.

    ASCII only (``\\u`` escapes), so NUL bytes and odd Unicode survive a Postgres text column.
    """
    return json.dumps(export, ensure_ascii=True, separators=(",", ":"))


def _box(key: bytes | str) -> MultiFernet:
    raw = key.decode() if isinstance(key, bytes) else key
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    if not keys:
        raise ValueError("empty encryption key")
    return MultiFernet([Fernet(part.encode()) for part in keys])


def encrypt_text(text: str, key: bytes | str) -> bytes:
    return _box(key).encrypt(zlib.compress(text.encode("ascii"), 6))


def decrypt_export(token: bytes, key: bytes | str) -> Any:
    """The original export from its encrypted form."""
    return json.loads(zlib.decompress(_box(key).decrypt(bytes(token))).decode("ascii"))


def _variable(name: str) -> str | None:
    """The Variable through every secrets backend; when none has it, inside a task, each
    backend is asked once more, directly: the SDK answers "not found" also when a backend
    (Vault, the Execution API) failed, and only a real "not found" may mean "no key"."""
    try:
        from airflow.sdk import Variable
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # no Airflow: only the environment variable can hold the key
        return None
    value = Variable.get(name, default=None)
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if value or comms is None:
        return value
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse, GetVariable, VariableResult
    from airflow.sdk.execution_time.secrets.execution_api import ExecutionAPISecretsBackend
    from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded
    from airflow.sdk.log import mask_secret

    for backend in ensure_secrets_backend_loaded():
        if isinstance(backend, ExecutionAPISecretsBackend):  # it answers None on errors: asked below
            continue
        try:
            value = backend.get_variable(key=name)
        except Exception as exc:
            raise EncryptionKeyUnavailable(
                f"could not read the Variable {name} from the secrets backend "
                f"{type(backend).__name__} ({type(exc).__name__}); the task is retried: nothing "
                "was stored without its original"
            ) from None
        if value:  # it answers now: a passing outage
            mask_secret(value)
            return value
    try:
        answer = comms.send(GetVariable(key=name))
    except Exception as exc:
        answer = exc
    if isinstance(answer, VariableResult):  # the API answered this time
        if answer.value:
            mask_secret(answer.value)
        return answer.value or None
    if isinstance(answer, ErrorResponse) and answer.error == ErrorType.VARIABLE_NOT_FOUND:
        return None
    reason = answer.error.value if isinstance(answer, ErrorResponse) else type(answer).__name__
    raise EncryptionKeyUnavailable(
        f"could not read the Variable {name} from the Execution API ({reason}); the task is "
        "retried: nothing was stored without its original"
    )


class EncryptionKeyUnavailable(ConnectionError):
    """The key's Variable could not be read (the Execution API or the secrets backend did not
    answer): a transient error of the task, never taken for "no key configured", which would
    store definitions without their originals."""


def resolve_encryption_key(variable: str = KEY_VARIABLE, env: str = KEY_ENV) -> bytes | None:
    """The key from ``$ZUORA_EXPORT_ENCRYPTION_KEY`` or the Airflow Variable; None only when
    neither is set. Raises ``EncryptionKeyUnavailable`` when the Variable cannot be read."""
    value = os.environ.get(env) or _variable(variable)
    if not value:
        log.warning(
            "No export encryption key (Variable %s / $%s): original exports are not "
            "stored, only the redacted definitions",
            variable,
            env,
        )
        return None
    return value.encode() if isinstance(value, str) else value
