"""The token cache inside real Airflow tasks (dag.test(), real Variables) and outside them."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest

from zuora.api import token_cache
from zuora.api.token_cache import ProcessTokenStore, Token, TokenCache, VariableTokenStore

FINGERPRINT, SECRET = "f" * 64, "client-secret-do-not-leak"
RESULTS: dict = {}  # what the task bodies return: dag.test() runs them in this process


@pytest.fixture
def run_in_task(airflow_db, tmp_path):
    """run_in_task(body) runs ``body()`` as a task of a one-task DAG under dag.test(); returns
    what it returned."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.sdk import dag, task

    def run(body):
        @dag(
            dag_id=f"token_cache_{body.__name__}",
            schedule=None,
            start_date=datetime(2026, 1, 1, tzinfo=UTC),
        )
        def probe():
            @task
            def call():
                RESULTS[body.__name__] = body()

            call()

        probe_dag = probe()
        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=tmp_path)  # dag.test() needs the DAG serialized in the metadata DB
        bag.bag_dag(probe_dag)
        sync_bag_to_db(bag, "dags-folder", None)
        assert probe_dag.test().state == "success"
        return RESULTS.pop(body.__name__)

    ProcessTokenStore._blobs.clear()
    yield run
    ProcessTokenStore._blobs.clear()


def minting(*tokens: Token):
    """A mint function handing out ``tokens`` in turn; ``.calls`` counts the mints."""

    def mint() -> Token:
        mint.calls += 1
        return tokens[mint.calls - 1]

    mint.calls = 0
    return mint


def cache(mint, store=None) -> TokenCache:
    return TokenCache(FINGERPRINT, SECRET, mint, refresh_margin=300, store=store)


def test_the_variable_store_is_used_inside_a_task_and_its_threads_only(run_in_task):
    def inside():
        in_thread = []
        thread = threading.Thread(target=lambda: in_thread.append(token_cache.in_airflow_task()))
        thread.start()
        thread.join()
        return token_cache.in_airflow_task(), in_thread, type(token_cache.default_store()).__name__

    assert run_in_task(inside) == (True, [True], "VariableTokenStore")
    assert token_cache.in_airflow_task() is False
    assert isinstance(token_cache.default_store(), ProcessTokenStore)


def test_a_fresh_token_in_the_variable_beats_an_expired_one_in_the_process(run_in_task):
    fresh = Token("fresh-token", time.time() + 3600, 3600)
    expired = Token("expired-token", time.time() - 60, 3600)

    def expired_first():
        cache(minting(fresh), store=VariableTokenStore()).get()  # another task shares a fresh token
        ProcessTokenStore._blobs.clear()
        cache(minting(expired), store=ProcessTokenStore()).get()  # this process holds an old one
        mint = minting(Token("third-token", time.time() + 3600, 3600))
        token, minted = cache(mint).get()
        return token.value, minted, mint.calls

    assert run_in_task(expired_first) == ("fresh-token", False, 0)


def test_the_stored_expiry_is_readable_without_the_secret(run_in_task):
    token = Token("the-bearer-token", time.time() + 3600, 3600)

    def stored():
        from airflow.sdk import Variable

        key = cache(minting()).key
        Variable.set(key, "gAAAAABold-format-blob")  # an older format: ignored, not an error
        mint = minting(token)
        minted = cache(mint).get()[1]
        return key, minted, Variable.get(key)

    key, minted, value = run_in_task(stored)
    assert key.startswith(token_cache.KEY_PREFIX) and minted is True
    assert json.loads(value)["expires_at"] == token.expires_at
    assert "the-bearer-token" not in value and SECRET not in value


LEGACY_VALUE = "legacy-plain-bearer-token-7d2a"


def test_expired_and_old_format_token_variables_are_dropped(run_in_task):
    from airflow.sdk._shared.secrets_masker import redact

    now = time.time()
    envelope = {
        "expired": {"expires_at": now - 1, "token": "gAAAAB-x"},
        "fresh": {"expires_at": now + 600, "token": "gAAAAB-y"},
        "no_expiry": {"token": "gAAAAB-z"},
    }

    def drop():
        from airflow.sdk import Variable

        for key in Variable.keys(prefix=token_cache.KEY_PREFIX):
            Variable.delete(key)
        for name, value in envelope.items():
            Variable.set(token_cache.KEY_PREFIX + name, json.dumps(value))
        Variable.set(token_cache.KEY_PREFIX + "old_format", "gAAAAABold-format-blob")
        Variable.set(token_cache.LEGACY_KEY_PREFIX + "expired", LEGACY_VALUE + "-expired")
        Variable.set(token_cache.LEGACY_KEY_PREFIX + "fresh", LEGACY_VALUE + "-fresh")
        Variable.set("zuora_not_a_token", "{}")
        dropped = token_cache.drop_expired_tokens(now=now)
        vanished = token_cache._drop_if_expired(token_cache.KEY_PREFIX + "gone", now)
        left = sorted(Variable.keys(prefix="zuora_"))
        Variable.delete("zuora_not_a_token")
        return dropped, vanished, left, redact(f"{LEGACY_VALUE}-expired {LEGACY_VALUE}-fresh")

    dropped, vanished, left, logged = run_in_task(drop)
    assert (dropped, vanished) == (5, False)
    assert left == ["zuora_not_a_token", "zuora_oauth_cache_fresh"]
    # deleted unread: loading a Variable named like a secret would have Airflow mask its value
    assert logged == f"{LEGACY_VALUE}-expired {LEGACY_VALUE}-fresh"


def test_the_token_variable_is_not_masked_by_airflow():
    """Airflow masks a Variable whose name looks sensitive wherever it is loaded: in the API
    server, one regex recompile over every pattern held per customer per day. The stored token
    is encrypted, so its name must not look sensitive."""
    from airflow.sdk._shared.secrets_masker.secrets_masker import should_hide_value_for_key

    key = cache(mint=None).key
    assert key.startswith(token_cache.KEY_PREFIX)
    assert not should_hide_value_for_key(key)
    assert should_hide_value_for_key(token_cache.LEGACY_KEY_PREFIX + "f" * 24)  # why it changed


def test_a_token_read_back_from_a_store_is_masked_in_the_logs():
    """Another process minted it (and masked it there); this one must mask it too."""
    from airflow.sdk._shared.secrets_masker import redact

    ProcessTokenStore._blobs.clear()
    shared = Token("read-back-bearer-token-4f1c9e", time.time() + 3600, 3600)
    cache(minting(shared)).get()  # "another process": the mint function masks nothing
    assert redact("Bearer read-back-bearer-token-4f1c9e") == "Bearer read-back-bearer-token-4f1c9e"

    token, minted = cache(minting()).get()  # this process reads it back

    assert (token.value, minted) == (shared.value, False)
    assert "read-back-bearer-token-4f1c9e" not in redact("Bearer read-back-bearer-token-4f1c9e")
    ProcessTokenStore._blobs.clear()


def test_a_401_keeps_the_newer_token_another_process_stored(run_in_task):
    old = Token("old-token", time.time() + 3600, 3600)
    new = Token("new-token", time.time() + 3600, 3600)

    def two_processes():
        from airflow.sdk import Variable

        first = cache(minting(old), store=VariableTokenStore())
        first.get()  # both processes hold the old token
        ProcessTokenStore._blobs.clear()
        second = cache(minting(new), store=VariableTokenStore())
        assert second.get() == (old, False)
        second.invalidate(old)  # Zuora refused it: the second process mints the new one
        assert second.get() == (new, True)
        ProcessTokenStore._blobs.clear()
        first.invalidate(old)  # later, the first process is refused the old token too
        stored = Variable.get(first.key, default=None)
        mint = minting(Token("third-token", time.time() + 3600, 3600))
        token, minted = cache(mint, store=VariableTokenStore()).get()
        return stored is not None, token.value, mint.calls

    assert run_in_task(two_processes) == (True, "new-token", 0)


def test_an_unusable_token_store_is_a_warning(caplog):
    """Outside a task the Variable store cannot be reached: each task would mint its own
    token, which an operator must be able to see."""
    import logging

    with caplog.at_level(logging.WARNING, logger="zuora.api.token_cache"):
        token, minted = cache(
            minting(Token("t-token-value", time.time() + 3600, 3600)), store=VariableTokenStore()
        ).get()
    assert minted
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("Could not write the token store VariableTokenStore") for m in messages)
    assert "t-token-value" not in caplog.text and SECRET not in caplog.text
