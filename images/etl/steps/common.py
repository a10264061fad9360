"""Helpers the steps share: task results, and talking to PostgreSQL through psql.

PostgreSQL is reached with libpq's own client, psql, so the connection comes
from the standard libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE, ...) exactly as every PostgreSQL tool reads it, and the image
needs no Python driver (its build cannot reach PyPI). Values never become
SQL text: they travel as psql variables, which psql quotes (`:'day'`), or as
COPY data, which the server never parses as SQL.
"""

import csv
import datetime
import io
import os
import subprocess
import sys
import time

TERMINATION_LOG = "/dev/termination-log"


def as_day(text: str) -> datetime.date:
    """A --day argument: a date, or a timestamp whose date is meant (a run's
    data interval start, such as $(context.dataIntervalStart)).
    """
    return datetime.date.fromisoformat(text[:10])


def write_results(**results: object) -> None:
    """Print `name=value` lines, and write them to the termination log.

    Kubernetes keeps a container's termination log as its termination message,
    where Sluice reads task results. Outside Kubernetes (`docker run`) the file
    does not exist: the results are then only printed.
    """
    text = "".join(f"{name}={value}\n" for name, value in results.items())
    sys.stdout.write(text)
    try:
        with open(TERMINATION_LOG, "w") as handle:
            handle.write(text)
    except OSError as error:
        note = f"note: results not written to {TERMINATION_LOG} ({error.strerror}); not in Kubernetes?"
        print(note, file=sys.stderr)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Without it libpq waits for an unreachable server for as long as TCP does.
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return env


def wait_for_server(seconds: float) -> None:
    """Wait until the server accepts connections (it may still be starting)."""
    deadline = time.monotonic() + seconds
    while True:
        # 0: accepting; 1: rejecting (starting up); 2: no response; 3: bad parameters.
        probe = subprocess.run(
            ["pg_isready", "-t", "5"], env=_env(), capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return
        if probe.returncode == 3 or time.monotonic() >= deadline:
            target = f"{os.environ.get('PGHOST', '(PGHOST unset)')}:{os.environ.get('PGPORT', '5432')}"
            raise SystemExit(f"PostgreSQL at {target} is not accepting connections: {probe.stdout.strip()}")
        time.sleep(1)


def psql(script: str, variables: dict[str, str] | None = None, csv_output: bool = False) -> str:
    """Run a psql script (from stdin) in one session, stopping at the first error.

    Returns what the script printed; psql's own errors go to our stderr.
    """
    command = ["psql", "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1"]
    if csv_output:
        command.append("--csv")
    for name, value in (variables or {}).items():
        command.append(f"--set={name}={value}")
    result = subprocess.run(command, input=script, env=_env(), stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"psql failed (exit code {result.returncode}); its error is above")
    return result.stdout


def query(sql: str, variables: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Rows of one query, as dicts of strings (psql's CSV output)."""
    return list(csv.DictReader(io.StringIO(psql(sql, variables, csv_output=True))))
