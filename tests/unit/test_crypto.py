"""Encrypted jobs (J9): keys and rotation, the API's refusal without keys, the task side."""

from __future__ import annotations

import json
import uuid
from base64 import b64decode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

import tests.sample_jobs_crypto as crypto_jobs
from app.crypto import (
    ENVELOPE_KEY,
    REDACTED,
    EncryptionError,
    is_sealed,
    open_payload,
    require_keys,
    seal,
    seal_payload,
    unseal,
)
from app.errors import ValidationError
from app.models import JobExecution
from app.tracked_task import EncryptedJobError
from tests.crypto_keys import use_keys

NEW_KEY = Fernet.generate_key().decode()
OLD_KEY = Fernet.generate_key().decode()
STRANGER_KEY = Fernet.generate_key().decode()


@pytest.fixture()
def keys() -> Iterator[None]:
    """The test process has a new key (encrypts) and an old one (still decrypts)."""
    with use_keys(NEW_KEY, OLD_KEY):
        yield


# -- keys and rotation -------------------------------------------------------------


def test_rotation_first_key_encrypts_and_every_key_decrypts() -> None:
    made_before_rotation = seal({"card": "4111"}, keys=[OLD_KEY])
    assert unseal(made_before_rotation, keys=[NEW_KEY, OLD_KEY]) == {"card": "4111"}
    made_after = seal({"card": "4111"}, keys=[NEW_KEY, OLD_KEY])
    assert unseal(made_after, keys=[NEW_KEY]) == {"card": "4111"}
    with pytest.raises(EncryptionError):
        unseal(made_after, keys=[OLD_KEY])  # the old key did not encrypt it


def test_token_of_an_unknown_key_raises_a_clear_error() -> None:
    token = seal([1, 2], keys=[STRANGER_KEY])
    with pytest.raises(EncryptionError, match="cannot be decrypted with any key in CELERIAC_ENCRYPTION_KEYS"):
        unseal(token, keys=[NEW_KEY, OLD_KEY])


def test_missing_or_malformed_keys_are_refused() -> None:
    with use_keys(), pytest.raises(EncryptionError, match="no encryption keys"):
        seal(1)
    with use_keys(), pytest.raises(ValidationError, match="CELERIAC_ENCRYPTION_KEYS"):
        require_keys()
    with pytest.raises(EncryptionError, match="not a Fernet key"):
        seal(1, keys=["not-a-key"])


def test_envelope_holds_only_ciphertext_and_opens_to_the_payload() -> None:
    envelope = seal_payload({"secret": "s3cr3t"}, keys=[NEW_KEY])
    assert is_sealed(envelope) and set(envelope) == {ENVELOPE_KEY}
    assert "s3cr3t" not in json.dumps(envelope)
    assert open_payload(envelope, keys=[NEW_KEY]) == {"secret": "s3cr3t"}
    assert open_payload({"plain": 1}) == {"plain": 1}
    with pytest.raises(EncryptionError, match="not a JSON object"):
        open_payload({ENVELOPE_KEY: seal([1], keys=[NEW_KEY])}, keys=[NEW_KEY])


# -- API ---------------------------------------------------------------------------


def test_api_refuses_encrypted_dispatch_without_keys_with_422(client: Any, auth: Any) -> None:
    with use_keys():
        response = client.post(
            "/api/jobs/dispatch",
            json={"job_class": "demo.echo", "payload": {"value": 1}, "options": {"encrypted": True}},
            headers=auth("operator"),
        )
    assert response.status_code == 422
    assert "CELERIAC_ENCRYPTION_KEYS" in response.get_json()["detail"]


def test_api_encrypted_dispatch_sends_and_shows_no_clear_payload(
    keys: None, client: Any, auth: Any, unique: str, redis_client: Any
) -> None:
    canary = f"canary-{unique}"
    queue = f"q-{unique}"  # no worker consumes it: the message stays in Redis
    headers = auth("operator")
    body = {"job_class": "demo.echo", "payload": {"value": canary}, "options": {"encrypted": True, "queue": queue}}
    response = client.post("/api/jobs/dispatch", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    job_id = response.get_json()["id"]

    messages = [m for key in redis_client.keys(f"{queue}*") for m in redis_client.lrange(key, 0, -1)]
    assert len(messages) == 1 and canary.encode() not in messages[0]
    message = json.loads(messages[0])
    assert message["headers"]["argsrepr"] == REDACTED and message["headers"]["kwargsrepr"] == REDACTED
    args, kwargs, _ = json.loads(b64decode(message["body"]))
    assert args == [] and open_payload(kwargs) == {"value": canary}

    shown = client.get(f"/api/jobs/{job_id}", headers=headers)
    assert shown.get_json()["payload"] == REDACTED and canary not in shown.get_data(as_text=True)
    listed = client.get(f"/api/jobs?queue={queue}", headers=headers)
    assert canary not in listed.get_data(as_text=True) and listed.get_json()["items"][0]["payload"] == REDACTED
    for key in redis_client.keys(f"{queue}*"):
        redis_client.delete(key)


def test_presenter_hides_a_sealed_payload_even_before_the_row_is_marked_encrypted() -> None:
    from ops_ui.presenters import job_to_dict

    row = JobExecution(
        id=str(uuid.uuid4()),
        job_class="demo.echo",
        queue="default",
        payload=seal_payload({"value": 1}, keys=[NEW_KEY]),
        result=seal(1, keys=[NEW_KEY]),
        encrypted=False,
    )
    shown = job_to_dict(row)
    assert shown["payload"] == REDACTED and shown["result"] == REDACTED
    row.encrypted, row.payload, row.result = True, {"value": 1}, None
    assert job_to_dict(row)["payload"] == REDACTED and job_to_dict(row)["result"] is None


# -- the task side (eager runs; the real worker is in tests/integration) -----------


def test_dispatch_now_of_an_encrypted_job_returns_the_clear_result(keys: None) -> None:
    assert crypto_jobs.SecretEcho.dispatch_now(secret="s", n=21) == {"echo": "s", "double": 42, "attempt": 1}


def test_task_body_gets_clear_payload_while_request_keeps_the_envelope(keys: None) -> None:
    envelope = seal_payload({"a": 1})
    outcome = crypto_jobs.request_kwargs.apply(kwargs=envelope)
    assert outcome.successful()
    assert isinstance(outcome.result, str)  # a sealed token
    assert unseal(outcome.result) == envelope


def test_result_of_an_encrypted_run_is_sealed_and_payload_sealed_twice_still_opens(keys: None) -> None:
    twice = seal_payload(seal_payload({"secret": "x"}))  # a retried job's stored envelope
    outcome = crypto_jobs.plain_echo.apply(kwargs=twice)
    assert outcome.successful() and unseal(outcome.result) == {"echo": "x"}


def test_message_sealed_with_an_unknown_key_fails_at_once_with_a_clear_error(
    keys: None, unique: str, redis_client: Any
) -> None:
    envelope = seal_payload({"secret": "x", "fail_first": unique}, keys=[STRANGER_KEY])
    outcome = crypto_jobs.SecretEcho.task.apply(kwargs=envelope, headers={"celeriac": {"encrypted": True}})
    assert outcome.failed() and isinstance(outcome.result, EncryptedJobError)
    assert "unknown key" in str(outcome.result) and "CELERIAC_ENCRYPTION_KEYS" in str(outcome.result)
    # The body never ran, so nothing could be retried.
    assert redis_client.get(f"tests:crypto:{unique}") is None


# -- make run ----------------------------------------------------------------------


def test_make_run_env_file_gets_an_encryption_key_never_printed(tmp_path: Path, capsys: Any) -> None:
    from app.config import load_settings, read_environment
    from scripts.run import ensure_env_file

    fresh = tmp_path / ".env"
    with use_keys():
        ensure_env_file(fresh)
        created = read_environment(fresh)
    key = created["CELERIAC_ENCRYPTION_KEYS"]
    assert unseal(seal("x", keys=[key]), keys=[key]) == "x"
    assert load_settings(created).encryption_keys == (key,)

    older = tmp_path / "older.env"
    older.write_text("SECRET_KEY=abc\nFLOWER_BASIC_AUTH=admin:pw\n")
    older.chmod(0o600)
    with use_keys():
        ensure_env_file(older)
        added = read_environment(older)["CELERIAC_ENCRYPTION_KEYS"]
    assert added and "SECRET_KEY=abc" in older.read_text()
    printed = capsys.readouterr()
    assert key not in printed.out + printed.err and added not in printed.out + printed.err
    assert "CELERIAC_ENCRYPTION_KEYS" in printed.out
