"""The command line, kubectl-style: the connection flags (``-n``,
``--context``, ``--kubeconfig``, ``--color``) before or after the command,
the command's own (``-A``, ``-o``, ...) after it. The one parser also tells
shell completion which commands and flags exist.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from sluice.cli.output import FORMATS

COMMANDS = {
    "list": "list runs with their state, progress and duration",
    "graph": "draw a run's DAG with each task's state",
    "logs": "print (or follow) the logs of a run's tasks",
    "start": "start a run of a pipeline",
    "cancel": "cancel a run",
    "rerun": "rerun a failed or cancelled run from its failure",
}
# Flags that take a value, for completion (what to offer after them).
VALUE_FLAGS = {
    "-n": "namespace",
    "--namespace": "namespace",
    "--context": "context",
    "--kubeconfig": "file",
    "-o": "output",
    "--output": "output",
    "-p": "param",
    "--param": "param",
    "-l": "selector",
    "--selector": "selector",
    "--pipeline": "pipeline",
    "--attempt": "number",
    "--instance": "number",
    "--timeout": "number",
    "--name": "name",
    "--color": "color",
}


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The connection flags; on subcommands their defaults are suppressed so
    a flag given before the command is not overwritten by one's default.
    """
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection")
    group.add_argument("-n", "--namespace", default=default, help="the namespace (default: the context's)")
    group.add_argument("--context", default=default, help="the kubeconfig context to use")
    group.add_argument(
        "--kubeconfig", default=default, help="the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    group.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default=argparse.SUPPRESS if suppress else "auto",
        help="colour the output (auto: on a terminal, unless NO_COLOR is set)",
    )


def _wait_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="the new run's name (default: generated)")
    parser.add_argument("--wait", action="store_true", help="follow the run; exit 0 if it succeeds, 1 if not")
    parser.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds (exit 3)")
    parser.add_argument("-o", "--output", choices=("name", "json", "yaml"), help="print the created run so")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="kubectl sluice",
        description="See, start, cancel and rerun Sluice pipeline runs.",
        epilog="Exit codes: 0 ok; 1 the run did not succeed, or the API refused; 2 bad usage; 3 --timeout.",
    )
    _common(root, suppress=False)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help=COMMANDS["list"], aliases=["ls"])
    _common(listing, suppress=True)
    listing.add_argument("-A", "--all-namespaces", action="store_true", help="runs of every namespace")
    listing.add_argument("-l", "--selector", help="only runs with these labels (as kubectl -l)")
    listing.add_argument("--pipeline", help="only runs of this pipeline")
    listing.add_argument("-o", "--output", choices=FORMATS, help="wide, json, yaml or name")

    graph = commands.add_parser("graph", help=COMMANDS["graph"])
    _common(graph, suppress=True)
    graph.add_argument("run", metavar="RUN")
    graph.add_argument("-w", "--watch", action="store_true", help="redraw as the run changes, until it ends")
    graph.add_argument("-o", "--output", choices=("json", "yaml"), help="print the run object instead")

    logs = commands.add_parser("logs", help=COMMANDS["logs"])
    _common(logs, suppress=True)
    logs.add_argument("run", metavar="RUN")
    logs.add_argument("task", metavar="TASK", nargs="?", help="one task (default: every task, in order)")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the logs until the run ends")
    logs.add_argument("--attempt", type=int, help="this attempt (1 is the first; default: the newest)")
    logs.add_argument("--instance", type=int, help="this instance of a fanned-out task (0-based index)")

    start = commands.add_parser("start", help=COMMANDS["start"])
    _common(start, suppress=True)
    start.add_argument("pipeline", metavar="PIPELINE")
    start.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="a param value (repeatable)"
    )
    _wait_flags(start)

    cancel = commands.add_parser("cancel", help=COMMANDS["cancel"])
    _common(cancel, suppress=True)
    cancel.add_argument("run", metavar="RUN")

    rerun = commands.add_parser("rerun", help=COMMANDS["rerun"])
    _common(rerun, suppress=True)
    rerun.add_argument("run", metavar="RUN")
    _wait_flags(rerun)
    return root


def parse(argv: Sequence[str]) -> argparse.Namespace:
    args = parser().parse_args(argv)
    if args.command == "ls":
        args.command = "list"
    if getattr(args, "timeout", None) is not None and not args.wait:
        parser().error("--timeout goes with --wait")
    for name, value in (
        ("attempt", getattr(args, "attempt", None)),
        ("instance", getattr(args, "instance", None)),
    ):
        if value is not None and value < (1 if name == "attempt" else 0):
            parser().error(f"--{name} must be at least {1 if name == 'attempt' else 0}")
    return args
