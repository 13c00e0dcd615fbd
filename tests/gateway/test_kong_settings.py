"""kong/kong.env, Kong's settings, read by kong/settings.py: one KEY=VALUE a line
that Compose, Kubernetes and Python all read the same way, or an error naming
the line."""

import re

import pytest

from kong import settings
from kong.errors import ConfigError


def setting_lines(text: str) -> list[str]:
    return [line for line in (line.strip() for line in text.splitlines()) if line and not line.startswith("#")]


def test_every_line_of_kong_env_is_a_plain_kong_setting():
    lines = setting_lines(settings.ENV_FILE.read_text(encoding="utf-8"))

    loaded = settings.load()

    assert len(loaded) == len(lines)  # none skipped, none twice
    for name, value in loaded.items():
        assert re.fullmatch(r"KONG_[A-Z0-9_]+", name), name
        assert value and value == value.strip(), name
        assert not set("'\"$") & set(value), f"{name}={value}"


def test_the_admin_api_listens_on_loopback_only():
    # Whoever reaches it is every user (kong.env): never on a public address.
    listeners = [entry.strip().split()[0] for entry in settings.load()["KONG_ADMIN_LISTEN"].split(",")]

    assert all(listener.startswith("127.0.0.1:") for listener in listeners), listeners


def test_comments_and_blank_lines_are_skipped_and_the_order_kept(tmp_path):
    path = tmp_path / "kong.env"
    path.write_text("# a comment\n\nKONG_B=2\n   # indented comment\nKONG_A=x=y\n", encoding="utf-8")

    assert list(settings.load(path).items()) == [("KONG_B", "2"), ("KONG_A", "x=y")]


@pytest.mark.parametrize(
    "line, says",
    [
        ("KONG_HEADERS", "expected KONG_NAME=plain value"),
        ("HEADERS=off", "expected KONG_NAME=plain value"),
        ("KONG_HEADERS='off'", "expected KONG_NAME=plain value"),
        ('KONG_HEADERS="off"', "expected KONG_NAME=plain value"),
        ("KONG_PREFIX=$HOME/kong", "expected KONG_NAME=plain value"),
        ("KONG_PREFIX=${HOME}", "expected KONG_NAME=plain value"),
        ("KONG_DATABASE=postgres", "KONG_DATABASE is set twice"),
    ],
    ids=["no-value", "not-kong", "single-quotes", "double-quotes", "expansion", "braced-expansion", "twice"],
)
def test_a_line_every_reader_would_not_read_alike_is_an_error_naming_it(tmp_path, line, says):
    path = tmp_path / "kong.env"
    path.write_text(f"# Kong's settings\nKONG_DATABASE=off\n{line}\n", encoding="utf-8")

    with pytest.raises(ConfigError) as refused:
        settings.load(path)

    assert str(refused.value) == f"kong.env line 3: {says}"
