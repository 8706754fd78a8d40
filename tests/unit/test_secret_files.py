"""Issue 13, item 6: every secret setting may be read from a file named by ``<name>_FILE``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from taskflow.config import SECRET_SETTINGS, ConfigError, Settings

DSN = "postgresql+asyncpg://taskflow:s3cret%20pw@db.internal:5432/taskflow"
REDIS = "rediss://:r3dis-pw@cache.internal:6380/2"
WEBHOOK = "a-webhook-key-of-32-characters!!"


def test_the_secret_settings_are_those_the_docs_name() -> None:
    assert SECRET_SETTINGS == (
        "TASKFLOW_DATABASE_URL",
        "TASKFLOW_REDIS_URL",
        "TASKFLOW_WEBHOOK_SECRET",
    )


def test_each_secret_is_read_from_its_file_without_the_trailing_newline(tmp_path: Path) -> None:
    files = {}
    for name, value in zip(SECRET_SETTINGS, (DSN, REDIS, WEBHOOK), strict=True):
        path = tmp_path / name.lower()
        path.write_text(value + "\n")
        files[f"{name}_FILE"] = str(path)

    settings = Settings.from_env(files)

    assert settings.database_url == DSN
    assert settings.redis_url == REDIS
    assert settings.webhook_secret == WEBHOOK.encode()


def test_a_file_with_crlf_or_no_newline_is_read_too(tmp_path: Path) -> None:
    crlf, bare = tmp_path / "crlf", tmp_path / "bare"
    crlf.write_bytes(DSN.encode() + b"\r\n")
    bare.write_text(REDIS)
    environ = {"TASKFLOW_DATABASE_URL_FILE": str(crlf), "TASKFLOW_REDIS_URL_FILE": str(bare)}

    settings = Settings.from_env(environ)

    assert (settings.database_url, settings.redis_url) == (DSN, REDIS)


def test_an_empty_variable_beside_its_file_counts_as_unset(tmp_path: Path) -> None:
    path = tmp_path / "dsn"
    path.write_text(DSN)
    environ = {"TASKFLOW_DATABASE_URL": " ", "TASKFLOW_DATABASE_URL_FILE": str(path)}
    assert Settings.from_env(environ).database_url == DSN


@pytest.mark.parametrize("name", SECRET_SETTINGS)
def test_the_variable_and_its_file_together_are_refused_naming_both(
    name: str, tmp_path: Path
) -> None:
    path = tmp_path / "secret"
    path.write_text(WEBHOOK)
    environ = {name: WEBHOOK, f"{name}_FILE": str(path)}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ)
    assert str(caught.value) == f"{name} and {name}_FILE are both set; give one"


@pytest.mark.parametrize("name", SECRET_SETTINGS)
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing", "No such file or directory"),
        (lambda d: d, "Is a directory"),
        (lambda d: _written(d / "latin1", b"caf\xe9"), "not UTF-8 text"),
    ],
)
def test_a_file_that_cannot_be_read_names_the_variable_and_the_path(
    name: str, make: Callable[[Path], Path], reason: str, tmp_path: Path
) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({f"{name}_FILE": str(path)})
    assert str(caught.value) == f"{name}_FILE: cannot read {str(path)!r}: {reason}"


@pytest.mark.parametrize("content", ["", "\n", "  \n"])
def test_an_empty_file_is_refused(content: str, tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"^TASKFLOW_DATABASE_URL_FILE: '.*empty' is empty$"):
        Settings.from_env({"TASKFLOW_DATABASE_URL_FILE": str(path)})


def test_a_command_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-secret"
    environ = {"PATH": "/usr/bin:/bin", "TASKFLOW_DATABASE_URL_FILE": str(missing)}
    taskflow = Path(sys.executable).parent / "taskflow"

    result = subprocess.run(
        [str(taskflow), "migrate"],
        check=False,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"taskflow: error: TASKFLOW_DATABASE_URL_FILE: cannot read {str(missing)!r}: "
        "No such file or directory\n"
    )


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("TASKFLOW_DATABASE_URL", "postgresql+asyncpg://app:PLANTED-pw/taskflow"),  # no @host
        ("TASKFLOW_DATABASE_URL", "postgresql+asyncpg://app:PLANTED-pw@[::1/taskflow"),
        ("TASKFLOW_DATABASE_URL", "postgresql+asyncpg://app:PLANTED-pw@db:99999/taskflow"),
        ("TASKFLOW_REDIS_URL", "redis://:PLANTED-pw@cache:99999/0"),
        ("TASKFLOW_REDIS_URL", "redis://:PLANTED-pw@[cache/0"),
    ],
)
def test_a_malformed_url_is_one_line_that_does_not_show_it(name: str, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: url})
    assert str(caught.value).startswith(f"{name}: its host or port cannot be read")
    assert "PLANTED" not in str(caught.value)
