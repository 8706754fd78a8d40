"""The webhook settings: the signing secret and the allowed hosts (docs/api.md, "Configuration")."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from taskflow.config import ConfigError, Settings
from taskflow.domain.callbacks import CallbackHosts

KEY = bytes(range(24))


def test_the_standard_webhooks_form_is_decoded_and_any_other_text_is_the_key() -> None:
    whsec = "whsec_" + base64.b64encode(KEY).decode()
    assert Settings.from_env({"TASKFLOW_WEBHOOK_SECRET": whsec}).webhook_secret == KEY
    raw = "a-long-enough-raw-secret"
    assert Settings.from_env({"TASKFLOW_WEBHOOK_SECRET": raw}).webhook_secret == raw.encode()
    assert Settings.from_env({}).webhook_secret is None


def test_the_secret_may_be_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("whsec_" + base64.b64encode(KEY).decode() + "\n")
    settings = Settings.from_env({"TASKFLOW_WEBHOOK_SECRET_FILE": str(path)})
    assert settings.webhook_secret == KEY


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TASKFLOW_WEBHOOK_SECRET": "short"}, "TASKFLOW_WEBHOOK_SECRET must be at least 16"),
        ({"TASKFLOW_WEBHOOK_SECRET": "whsec_***"}, "TASKFLOW_WEBHOOK_SECRET: the part after"),
        (
            {"TASKFLOW_WEBHOOK_SECRET": "x" * 20, "TASKFLOW_WEBHOOK_SECRET_FILE": "/x"},
            "are both set",
        ),
        ({"TASKFLOW_WEBHOOK_SECRET_FILE": "/no/such/file"}, "TASKFLOW_WEBHOOK_SECRET_FILE"),
        ({"TASKFLOW_CALLBACK_ALLOWED_HOSTS": "a.com,b.com:80"}, "TASKFLOW_CALLBACK_ALLOWED_HOSTS"),
        ({"TASKFLOW_CALLBACK_RETRY_SECONDS": "-1"}, "TASKFLOW_CALLBACK_RETRY_SECONDS"),
        ({"TASKFLOW_CALLBACK_TIMEOUT_SECONDS": "0"}, "TASKFLOW_CALLBACK_TIMEOUT_SECONDS"),
    ],
)
def test_a_bad_webhook_setting_names_its_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env(environ)
    assert "\n" not in str(caught.value)


def test_allowed_hosts_are_parsed_once_at_start() -> None:
    settings = Settings.from_env({"TASKFLOW_CALLBACK_ALLOWED_HOSTS": "127.0.0.1, hooks.lan"})
    assert settings.callback_allowed_hosts == CallbackHosts.parse(["127.0.0.1", "hooks.lan"])
