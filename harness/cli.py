"""The ``harness`` command: one subcommand per job, each in harness/commands/<name>.py.

Subcommand modules are imported only when chosen, so quick commands stay quick. Every module has
``add_arguments(parser)`` and ``run(args) -> int``. Bad input is one line and exit status 2; an
interrupted run cleans up and exits 130; SIGTERM is treated like Ctrl-C (harness.interrupts).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from harness import __version__, interrupts
from harness.errors import HarnessError, UsageError

DESCRIPTION = ("Rolling-upgrade compatibility harness for Coder's prebuilt-workspace claim → agent reinit "
               "protocol: old and new coderd replicas on one PostgreSQL pubsub, agents of both, faults at the "
               "worst moment, and a compatibility report.")

COMMANDS: dict[str, str] = {
    "run": "run the compatibility matrix on the embedded fleet and write a report",
    "report": "re-render a run's report, diff two runs, or show verdict trends",
    "roll": "run a seeded rolling upgrade with continuous claims",
    "versions": "show which protocol variant each Coder release tag ships",
    "codec": "print what every publisher/listener and server/agent pairing decodes",
    "serve": "run one reference coderd replica of a given variant",
    "agent": "attach one simulated workspace agent to a server and print what it sees",
    "agents": "run many simulated agents in one process",
    "bench": "measure pubsub, agents, proxy, the matrix or a soak",
    "doctor": "show the Python, PostgreSQL and Docker the harness will use",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command, then exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="harness", description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="Run 'harness COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, help_line in COMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line)
        if name == command:
            importlib.import_module(f"harness.commands.{name}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and command not in COMMANDS:
        sys.stderr.write(f"harness: error: unknown command {command!r} (one of: {', '.join(COMMANDS)})\n")
        return 2
    args = build_parser(command).parse_args(argv)
    if args.command is None:
        build_parser(None).print_help()
        return 0
    interrupts.install()
    try:
        return importlib.import_module(f"harness.commands.{args.command}").run(args)
    except UsageError as e:
        sys.stderr.write(f"harness {args.command}: error: {e}\n")
        return 2
    except HarnessError as e:
        sys.stderr.write(f"harness {args.command}: {e}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"harness {args.command}: interrupted; cleaned up\n")
        return 130
    except BrokenPipeError:  # output piped into head(1) or similar: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
