"""python -m kong: render kong.yml for real Kong, or generate HAProxy's config from it.

    python -m kong render  [--config kong.yml] --out PATH
    python -m kong haproxy [--config kong.yml] --out PATH \\
        --upstream users=127.0.0.1:8101 --upstream products=127.0.0.1:8102 \\
        --upstream orders=127.0.0.1:8103,127.0.0.1:8203 [--bind 0.0.0.0:8000] \\
        [--metrics-bind 127.0.0.1:8405]

${NAME} placeholders are filled in from the environment. Both outputs hold the
jwt secret, so they only ever go to a file (mode 0600), never to stdout. Errors
are one line on stderr and exit status 2.
"""

import argparse
import sys

from kong.config import load, render, write_private_file, write_rendered
from kong.errors import ConfigError
from kong.haproxy import DEFAULT_BIND, DEFAULT_METRICS_BIND, generate_haproxy_config

EXIT_ERROR = 2  # what argparse uses for usage errors too


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except ConfigError as error:  # the message names the problem and holds no secret
        return _fail(str(error))
    except OSError as error:  # the output can't be written (no such directory, no permission)
        return _fail(f"cannot write {args.out}: {error.strerror or error}")
    return 0


def _run(args: argparse.Namespace) -> None:
    upstreams = _upstreams(args.upstream) if args.command == "haproxy" else {}
    config = load(args.config)
    try:
        config = render(config)
        if args.command == "haproxy":
            haproxy_config = generate_haproxy_config(
                config,
                upstreams,
                bind=args.bind,
                metrics_bind=args.metrics_bind,
                pidfile=args.pidfile,
                stats_socket=args.stats_socket,
            )
    except ConfigError as error:  # add which file the offending item is in
        raise ConfigError(f"{args.config}: {error}") from None
    if args.command == "haproxy":
        write_private_file(args.out, haproxy_config)
    else:
        write_rendered(config, args.out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kong", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    render_command = commands.add_parser("render", help="write kong.yml with placeholders filled in, for Kong")
    haproxy_command = commands.add_parser("haproxy", help="write an HAProxy 2.6 config enforcing kong.yml")
    for command in (render_command, haproxy_command):
        command.add_argument("--config", default="kong.yml", help="the declarative config (default: %(default)s)")
        command.add_argument("--out", required=True, help="the file to write (mode 0600: it holds secrets)")

    haproxy_command.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="SERVICE=HOST:PORT[,HOST:PORT...]",
        help="where a kong.yml service really runs (several: copies sharing its requests); one for every service",
    )
    haproxy_command.add_argument("--bind", default=DEFAULT_BIND, help="the proxy's address (default: %(default)s)")
    haproxy_command.add_argument(
        "--metrics-bind",
        default=DEFAULT_METRICS_BIND,
        help="a loopback address for Prometheus metrics (GET /metrics), if kong.yml has the prometheus plugin "
        "(default: %(default)s)",
    )
    haproxy_command.add_argument("--pidfile", help="where HAProxy writes its pid")
    haproxy_command.add_argument("--stats-socket", help="a UNIX socket for HAProxy's runtime API (mode 0600)")
    return parser


def _upstreams(values: list[str]) -> dict[str, str]:
    upstreams = {}
    for value in values:
        name, separator, address = value.partition("=")
        if not separator or not name or not address:
            raise ConfigError(f"--upstream {value!r}: expected SERVICE=HOST:PORT")
        if name in upstreams:
            raise ConfigError(f"--upstream: {name!r} given twice")
        upstreams[name] = address
    return upstreams


def _fail(message: str) -> int:
    print(f"python -m kong: error: {message}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
