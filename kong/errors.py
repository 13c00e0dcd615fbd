"""The one error this package raises for anything wrong with kong.yml or its inputs."""


class ConfigError(Exception):
    """kong.yml (or an input that goes with it) can't be used as it is.

    The message names the offending item and is safe to print: it never contains
    a secret, so the CLI shows it as is, on one line, without a traceback.
    """
