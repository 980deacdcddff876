"""OAuth bearer tokens: minted once, reused until shortly before they expire.

A token is shared by every thread of a process (one mint at a time, under a lock) and by
the task processes of a run through an Airflow Variable. The Variable holds the token only
encrypted with a key derived from the client secret, under a name made from a fingerprint
of base URL, client id and secret: rotated credentials never see an old token, and nobody
without the secret can use a stored one. Outside an Airflow task (tests, CLI) or when the
Variable store is unreachable, the cache lives in the process alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float          # epoch seconds
    lifetime: float            # seconds, as granted

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
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:
        return ProcessTokenStore()
    return VariableTokenStore() if getattr(task_runner, "SUPERVISOR_COMMS", None) else ProcessTokenStore()


class TokenCache:
    """Hands out a usable token for one set of credentials, minting only when needed."""

    def __init__(self, fingerprint: str, secret: str, mint: Callable[[], Token], *,
                 refresh_margin: float, store: TokenStore | None = None):
        self.key = f"zuora_oauth_token_{fingerprint[:24]}"
        self._box = Fernet(base64.urlsafe_b64encode(
            hashlib.sha256(f"zuora-token-cache\0{fingerprint}\0{secret}".encode()).digest()))
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
            if self._usable(self._token):
                return self._token, False
            self._token = self._mint()
            self._remember(self._token)
            return self._token, True

    def _usable(self, token: Token | None) -> bool:
        return token is not None and token.usable(self._margin)

    def invalidate(self, token: Token) -> None:
        """Forget ``token`` (after a 401); a newer token minted meanwhile is kept."""
        with self._lock:
            if self._token == token:
                self._token = None
                self._forget()

    def _stored(self) -> Token | None:
        for store in self._stores:
            try:
                blob = store.load(self.key)
                if blob:
                    data = json.loads(self._box.decrypt(blob.encode()))
                    return Token(data["value"], data["expires_at"], data["lifetime"])
            except InvalidToken:
                log.debug("Ignoring a cached token encrypted for other credentials")
            except Exception as exc:  # an unreachable store must not stop the sync
                log.debug("Token store %s unavailable: %s", type(store).__name__, type(exc).__name__)
        return None

    def _remember(self, token: Token) -> None:
        blob = self._box.encrypt(json.dumps(token.__dict__).encode()).decode()
        for store in self._stores:
            try:
                store.save(self.key, blob)
            except Exception as exc:
                log.debug("Token store %s unavailable: %s", type(store).__name__, type(exc).__name__)

    def _forget(self) -> None:
        for store in self._stores:
            try:
                store.drop(self.key)
            except Exception as exc:
                log.debug("Token store %s unavailable: %s", type(store).__name__, type(exc).__name__)
