"""python -m kong render: kong.yml with its placeholders filled in, for Kong to read.

    python -m kong render [--config kong.yml] --out PATH \\
        [--upstream users=127.0.0.1:8101 --upstream orders=127.0.0.1:8103,127.0.0.1:8203 ...]

${NAME} placeholders are filled in from the environment. The output holds the
jwt secret, so it only ever goes to a file (mode 0600), never to stdout.
--upstream balances a service over addresses of its own (kong.config.with_upstreams):
the native stack's loopback ports. Errors are one line on stderr and exit status 2.
"""

import argparse
import sys

from kong.config import load, render, with_upstreams, write_rendered
from kong.errors import ConfigError

EXIT_ERROR = 2  # what argparse uses for usage errors too


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        targets = _upstreams(args.upstream)
        config = load(args.config)
        try:
            config = with_upstreams(render(config), targets)
        except ConfigError as error:  # add which file the offending item is in
            raise ConfigError(f"{args.config}: {error}") from None
        write_rendered(config, args.out)
    except ConfigError as error:  # the message names the problem and holds no secret
        return _fail(str(error))
    except OSError as error:  # the output can't be written (no such directory, no permission)
        return _fail(f"cannot write {args.out}: {error.strerror or error}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kong", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    render_command = commands.add_parser("render", help="write kong.yml with placeholders filled in, for Kong")
    render_command.add_argument("--config", default="kong.yml", help="the declarative config (default: %(default)s)")
    render_command.add_argument("--out", required=True, help="the file to write (mode 0600: it holds secrets)")
    render_command.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="SERVICE=HOST:PORT[,HOST:PORT...]",
        help="run a service at these addresses instead of its host in kong.yml (several: copies sharing its requests)",
    )
    return parser


def _upstreams(values: list[str]) -> dict[str, list[str]]:
    upstreams = {}
    for value in values:
        name, separator, addresses = value.partition("=")
        if not separator or not name or not addresses:
            raise ConfigError(f"--upstream {value!r}: expected SERVICE=HOST:PORT")
        if name in upstreams:
            raise ConfigError(f"--upstream: {name!r} given twice")
        upstreams[name] = addresses.split(",")
    return upstreams


def _fail(message: str) -> int:
    print(f"python -m kong: error: {message}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
