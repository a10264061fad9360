"""Entry point of `kubectl sluice` (installed as ``kubectl-sluice``, which
kubectl finds on PATH). Turns every failure into one line on stderr and an
exit code a script can test, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from sluice.cli.arguments import parse

EXIT_USAGE = 2
EXIT_FAILED = 1


def _api_message(error: object) -> str:
    body = getattr(error, "body", None)
    try:
        message = json.loads(body or "{}").get("message")
    except (TypeError, ValueError):
        message = None
    return str(message or getattr(error, "reason", None) or error)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
        from urllib3.exceptions import HTTPError  # noqa: PLC0415
    except ImportError:
        print("error: kubectl sluice needs the kubernetes client: pip install 'sluice[cli]'", file=sys.stderr)
        return EXIT_USAGE
    from sluice.cli import control, logs, show  # noqa: PLC0415
    from sluice.cli.connection import UsageError, connect  # noqa: PLC0415
    from sluice.cli.terminal import open_terminal  # noqa: PLC0415
    from sluice.cli.watching import RunDeleted  # noqa: PLC0415

    term = open_terminal(args.color)
    try:
        session = connect(
            args.kubeconfig, args.context, args.namespace, getattr(args, "all_namespaces", False)
        )
        commands = {
            "list": lambda: show.list_runs(session, term, args.output, args.pipeline, args.selector),
            "graph": lambda: show.graph(session, term, args.run, args.watch, args.output),
            "logs": lambda: logs.logs(
                session, term, args.run, args.task, args.attempt, args.instance, args.follow
            ),
            "start": lambda: control.start(
                session, term, args.pipeline, args.param, args.name, args.wait, args.timeout, args.output
            ),
            "rerun": lambda: control.rerun(
                session, term, args.run, args.name, args.wait, args.timeout, args.output
            ),
            "cancel": lambda: control.cancel(session, term, args.run),
        }
        code = commands[args.command]()
    except UsageError as error:
        term.say(f"error: {error}")
        code = EXIT_USAGE
    except ApiException as error:
        term.say(f"error: {_api_message(error)}")
        code = EXIT_USAGE if error.status == 404 else EXIT_FAILED
    except RunDeleted as error:
        term.say(f"error: {error}")
        code = EXIT_FAILED
    except HTTPError as error:
        term.say(f"error: cannot reach the cluster: {error}")
        code = EXIT_FAILED
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say to it.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (so the exit's flush does not fail too)
        code = EXIT_FAILED
    except Exception as error:  # the last resort: one line, never a traceback
        term.say(f"error: {type(error).__name__}: {error}")
        code = EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
