"""Loading kong.yml, filling in its ${NAME} placeholders, writing the result.

Kong can't read a jwt secret from a vault, so the copy real Kong reads holds it
literally: it is rendered just before Kong starts, from the environment, and
written readable by its owner only.
"""

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kong.errors import ConfigError

# A value that is exactly ${NAME} is a placeholder. Partial ones ("abc${X}") are
# refused rather than passed on literally: that is always a mistake in kong.yml.
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

RENDERED_HEADER = (
    "# Rendered from kong.yml by `python -m kong render`: it holds secrets.\n"
    "# Do not edit, commit or share it; edit kong.yml and render again.\n"
)


def load(path: str | os.PathLike) -> dict:
    """kong.yml as plain data (YAML anchors resolved, placeholders untouched)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:  # missing or unreadable: say which file and why
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {_describe(error)}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return config


def render(config: Any, env: Mapping[str, str] | None = None) -> Any:
    """A copy of `config` with every ${NAME} value replaced by env[NAME].

    `env` defaults to os.environ. The copy shares no containers with `config`
    (so YAML anchors don't come back as aliases when it is written out).
    """
    return _render(config, os.environ if env is None else env, where="")


def with_upstreams(config: Mapping, targets: Mapping[str, list[str]]) -> dict:
    """A copy of `config` in which each named service is balanced over `targets`.

    kong.yml names its services by host (`url: http://users:8000`), as compose
    and Kubernetes resolve them. Where they run elsewhere (the native stack: on
    loopback ports, several copies of one), an upstream of the same name takes
    precedence over DNS, and Kong balances over its targets: the services' own
    entries stay as they are.
    """
    hosts = {urlsplit(service["url"]).hostname for service in config.get("services", [])}
    unknown = sorted(set(targets) - hosts)
    if unknown:
        raise ConfigError(f"no service in kong.yml has the host {', '.join(unknown)}")
    upstreams = [
        {"name": name, "targets": [{"target": target} for target in addresses]} for name, addresses in targets.items()
    ]
    return {**config, "upstreams": [*config.get("upstreams", []), *upstreams]}


def write_rendered(config: Mapping, path: str | os.PathLike) -> None:
    """Write a rendered config as YAML that real Kong reads, private to its owner."""
    text = yaml.dump(config, Dumper=_KongYamlDumper, sort_keys=False, allow_unicode=True)
    write_private_file(path, RENDERED_HEADER + text)


def write_private_file(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text`, mode 0600 from the first byte on.

    The file appears atomically (written next to it, then renamed), so a reader
    never sees half a config and the secret is never world-readable, not even
    for a moment. Raises OSError if it can't be written.
    """
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:  # any failure, even Ctrl-C: leave no stray secret file behind
        Path(temporary).unlink(missing_ok=True)
        raise


def _render(node: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(node, dict):
        return {key: _render(value, env, _field(where, key)) for key, value in node.items()}
    if isinstance(node, list):
        return [_render(item, env, f"{where}[{index}]") for index, item in enumerate(node)]
    if isinstance(node, str):
        return _fill(node, env, where)
    return node


def _field(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _fill(text: str, env: Mapping[str, str], where: str) -> str:
    match = PLACEHOLDER.fullmatch(text)
    if match is None:
        if "${" in text:
            raise ConfigError(f"{where}: a ${{NAME}} placeholder must be the whole value")
        return text
    name = match.group(1)
    value = env.get(name)
    if value is None:
        raise ConfigError(f"{where}: environment variable {name} is not set")
    if value == "":
        raise ConfigError(f"{where}: environment variable {name} is empty")
    return value


def _describe(error: yaml.YAMLError) -> str:
    # Line and problem only: PyYAML's str() quotes the offending source line,
    # which in a rendered file could be the secret.
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or type(error).__name__
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


class _KongYamlDumper(yaml.SafeDumper):
    """Writes multi-line strings (the Lua snippets) as literal blocks, as kong.yml does."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_KongYamlDumper.add_representer(str, _represent_str)
