"""Kong's settings (kong/kong.env) as a dict of KONG_* variables.

kong.env is the one place they are written; compose reads the file itself, the
native stack reads it through `load`, and tests/deploy checks the Kubernetes
Deployment against it.
"""

from pathlib import Path

from kong.errors import ConfigError

ENV_FILE = Path(__file__).with_name("kong.env")


def load(path: Path = ENV_FILE) -> dict[str, str]:
    """The KEY=VALUE lines of `path` (comments and blank lines skipped), in order."""
    settings = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, value = line.partition("=")
        # The file must mean the same to every reader: no quoting, no expansion,
        # nothing but Kong's own variables.
        if not separator or not name.startswith("KONG_") or value[:1] in ("'", '"') or "$" in value:
            raise ConfigError(f"{path.name} line {number}: expected KONG_NAME=plain value")
        if name in settings:
            raise ConfigError(f"{path.name} line {number}: {name} is set twice")
        settings[name] = value
    return settings
