"""OAuth bearer tokens: minted once, reused until shortly before they expire.

A token is shared by every thread of a process (one mint at a time, under a lock) and by
the task processes of a run through an Airflow Variable. The Variable holds JSON
``{"expires_at": <epoch seconds>, "token": "<Fernet blob>"}``: the token only encrypted with
a key derived from the client secret, under a name made from a fingerprint of base URL,
client id and secret, so rotated credentials never see an old token and nobody without the
secret can use a stored one; the expiry in clear, so ``drop_expired_tokens`` (run hourly by
the monitor DAG's retention task) can delete expired ones without the secret. Outside an
Airflow task (tests, CLI) or when the Variable store is unreachable, the cache lives in the
process alone.

The name holds no word Airflow deems sensitive ("token", "secret", ...): Airflow masks the value
of such a Variable in every process that loads it, the API server included, and each value
masked there recompiles one regex of every pattern that long-lived process holds (about 0.45 ms
per pattern held, ``benchmarks/secrets_masker.py``): a token a customer a day, without bound.
The stored value needs no masking: the token in it is encrypted, and whoever loads the
Variable in a task masks the token once decrypted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger(__name__)

KEY_PREFIX = "zuora_oauth_cache_"
LEGACY_KEY_PREFIX = "zuora_oauth_token_"  # until 2026-12: dropped unread by the retention task


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # epoch seconds
    lifetime: float  # seconds, as granted

    def usable(self, margin: float) -> bool:
        """True while more than ``margin`` seconds remain (capped at 10% of its lifetime)."""
        return time.time() < self.expires_at - min(margin, self.lifetime * 0.1)


class TokenStore(Protocol):
    def load(self, key: str) -> str | None: ...
    def save(self, key: str, blob: str) -> None: ...
    def drop(self, key: str) -> None: ...


class ProcessTokenStore:
    """Tokens kept in this process only."""

    _blobs: dict[str, str] = {}

    def load(self, key: str) -> str | None:
        return self._blobs.get(key)

    def save(self, key: str, blob: str) -> None:
        self._blobs[key] = blob

    def drop(self, key: str) -> None:
        self._blobs.pop(key, None)


class VariableTokenStore:
    """Tokens in Airflow Variables, reachable from every task of a deployment."""

    def load(self, key: str) -> str | None:
        from airflow.sdk import Variable

        return Variable.get(key, default=None)

    def save(self, key: str, blob: str) -> None:
        from airflow.sdk import Variable

        Variable.set(key, blob, description="Zuora OAuth token cache (encrypted; safe to delete)")

    def drop(self, key: str) -> None:
        from airflow.sdk import Variable

        Variable.delete(key)


def default_store() -> TokenStore:
    """The Variable store inside an Airflow task, the process store elsewhere."""
    return VariableTokenStore() if in_airflow_task() else ProcessTokenStore()


def in_airflow_task() -> bool:
    """True while an Airflow task runs (also in its threads): the Task SDK has a context."""
    from airflow.sdk import get_current_context

    try:
        get_current_context()
    except RuntimeError:  # "no context was found! Are you running within an Airflow task?"
        return False
    return True


def drop_expired_tokens(now: float | None = None) -> int:
    """Delete the token Variables that expired or that are not in the current format; returns
    how many. Needs an Airflow task (the Task SDK lists DB-stored Variables only).

    A legacy Variable is deleted unread: its name looks sensitive, so loading it would have
    Airflow mask its value in this process (and the API server) for nothing."""
    from airflow.sdk import Variable

    now = time.time() if now is None else now
    legacy = Variable.keys(prefix=LEGACY_KEY_PREFIX)
    for key in legacy:
        Variable.delete(key)
    return len(legacy) + sum(_drop_if_expired(key, now) for key in Variable.keys(prefix=KEY_PREFIX))


def _drop_if_expired(key: str, now: float) -> bool:
    from airflow.sdk import Variable

    value = Variable.get(key, default=None)
    if value is None:  # deleted meanwhile (another cleanup, or a 401 dropped it)
        return False
    if _expires_at(value) > now:
        return False
    Variable.delete(key)  # a Variable already gone is not an error
    return True


def _expires_at(value: str) -> float:
    """The clear-text expiry of a stored token; 0 for anything else (an older format)."""
    try:
        expires_at = json.loads(value)["expires_at"]
    except (ValueError, TypeError, KeyError):
        return 0
    return expires_at if isinstance(expires_at, (int, float)) else 0


class TokenCache:
    """Hands out a usable token for one set of credentials, minting only when needed."""

    def __init__(
        self,
        fingerprint: str,
        secret: str,
        mint: Callable[[], Token],
        *,
        refresh_margin: float,
        store: TokenStore | None = None,
    ):
        self.key = f"{KEY_PREFIX}{fingerprint[:24]}"
        self._box = Fernet(
            base64.urlsafe_b64encode(
                hashlib.sha256(f"zuora-token-cache\0{fingerprint}\0{secret}".encode()).digest()
            )
        )
        self._mint = mint
        self._margin = refresh_margin
        store = store or default_store()
        self._stores: list[TokenStore] = [ProcessTokenStore()]
        if not isinstance(store, ProcessTokenStore):
            self._stores.append(store)
        self._lock = threading.Lock()
        self._token: Token | None = None

    def get(self) -> tuple[Token, bool]:
        """A usable token, and whether it was minted by this call."""
        with self._lock:
            if not self._usable(self._token):  # the stores only when this one will not do
                self._token = self._stored()
            if self._token is not None and self._usable(self._token):
                return self._token, False
            token = self._token = self._mint()
            self._remember(token)
            return token, True

    def _usable(self, token: Token | None) -> bool:
        return token is not None and token.usable(self._margin)

    def invalidate(self, token: Token) -> None:
        """Forget ``token`` (after a 401); a newer token minted meanwhile is kept."""
        with self._lock:
            if self._token == token:
                self._token = None
                self._forget(token)

    def _stored(self) -> Token | None:
        """The first usable token of the stores (process first), else None. A token read back
        is registered with the secrets masker, as a minted one is: this process may log it."""
        for store in self._stores:
            token = self._load(store)
            if token is not None and self._usable(token):
                mask_secret(token.value)
                return token
        return None

    def _load(self, store: TokenStore) -> Token | None:
        try:
            value = store.load(self.key)
        except Exception as exc:  # an unreachable store must not stop the sync
            _unavailable(store, "read", exc)
            return None
        return self._open(value) if value else None

    def _open(self, value: str) -> Token | None:
        try:
            data = json.loads(self._box.decrypt(json.loads(value)["token"].encode()))
            return Token(data["value"], data["expires_at"], data["lifetime"])
        except InvalidToken:
            log.debug("Ignoring a cached token encrypted for other credentials")
        except (ValueError, TypeError, KeyError, AttributeError):
            log.debug("Ignoring a cached token in an older format")
        return None

    def _remember(self, token: Token) -> None:
        blob = json.dumps(
            {
                "expires_at": token.expires_at,
                "token": self._box.encrypt(json.dumps(token.__dict__).encode()).decode(),
            }
        )
        for store in self._stores:
            try:
                store.save(self.key, blob)
            except Exception as exc:
                _unavailable(store, "write", exc)

    def _forget(self, token: Token) -> None:
        """Drop ``token`` from the stores; a store holding another (newer) token, minted
        meanwhile by another process, keeps it."""
        for store in self._stores:
            stored = self._load(store)
            if stored is not None and stored.value != token.value:
                continue
            try:
                store.drop(self.key)
            except Exception as exc:
                _unavailable(store, "delete from", exc)


def _unavailable(store: TokenStore, action: str, error: Exception) -> None:
    """A store that cannot be used costs a mint, not the sync: said once per failure, at
    WARNING, so a broken Variable store (every task minting its own token) is seen."""
    log.warning(
        "Could not %s the token store %s (%s); going on without it",
        action,
        type(store).__name__,
        type(error).__name__,
    )


def mask_secret(secret: str) -> None:
    """Have Airflow redact ``secret`` from every log line of this process and its supervisor."""
    from airflow.sdk.log import mask_secret as airflow_mask_secret

    airflow_mask_secret(secret)
