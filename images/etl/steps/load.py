"""Load: put the day's aggregates into the PostgreSQL warehouse, table daily_sales.

    load.py --clean-dir DIR --day D

Loads every DIR/*.csv (the transform's output, one file per region). The
connection comes from libpq's environment: PGHOST, PGPORT, PGUSER,
PGPASSWORD, PGDATABASE. Idempotent per day: in one transaction the day's old
rows are deleted and the new ones inserted, so a re-run (a retry, a rerun of
the run, a backfill) replaces the day instead of doubling it, and readers
never see the day half-loaded. The number of rows loaded is the task's
result `rows`.
"""

import argparse
import csv
import decimal
import io
import pathlib

from common import as_day, psql, wait_for_server, write_results

COLUMNS = ["day", "region", "product", "orders", "revenue", "units"]

SCRIPT = r"""
SET client_min_messages = warning;  -- no NOTICE that the table already exists
BEGIN;
CREATE TABLE IF NOT EXISTS daily_sales (
    day       date          NOT NULL,
    region    text          NOT NULL,
    product   text          NOT NULL,
    orders    integer       NOT NULL,
    revenue   numeric(14,2) NOT NULL,
    units     integer       NOT NULL,
    loaded_at timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (day, region, product)
);
-- Loads wait for each other (readers do not): two loads of the same day at
-- once would otherwise both delete, then collide on the primary key.
LOCK TABLE daily_sales IN SHARE ROW EXCLUSIVE MODE;
CREATE TEMP TABLE incoming (
    day date, region text, product text, orders integer, revenue numeric(14,2), units integer
) ON COMMIT DROP;
COPY incoming (day, region, product, orders, revenue, units) FROM STDIN WITH (FORMAT csv);
{data}\.
DELETE FROM daily_sales WHERE day = :'day';
INSERT INTO daily_sales (day, region, product, orders, revenue, units)
    SELECT day, region, product, orders, revenue, units FROM incoming;
SELECT count(*) AS loaded FROM daily_sales WHERE day = :'day';
COMMIT;
"""


def read_aggregates(directory: pathlib.Path, day: str) -> list[list[str]]:
    """Every row of DIR/*.csv, checked: this day only, numbers that are numbers."""
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise SystemExit(f"no aggregates (*.csv) in {directory}")
    rows: list[list[str]] = []
    keys: set[tuple[str, str]] = set()
    for path in files:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames != COLUMNS:
                raise SystemExit(f"{path}: columns {reader.fieldnames}, expected {COLUMNS}")
            for line, row in enumerate(reader, start=2):
                where = f"{path}:{line}"
                if row["day"] != day:
                    raise SystemExit(f"{where}: day {row['day']!r}, but this load is for {day}")
                for name in ("region", "product"):
                    if not row[name] or not row[name].isprintable():
                        raise SystemExit(f"{where}: {name} {row[name]!r} is empty or not printable")
                try:
                    orders, units = int(row["orders"]), int(row["units"])
                    revenue = decimal.Decimal(row["revenue"])
                except (ValueError, decimal.InvalidOperation) as error:
                    raise SystemExit(f"{where}: not a number ({error})") from None
                if orders < 0 or units < 0 or not revenue.is_finite():
                    raise SystemExit(f"{where}: negative or non-finite figures")
                key = (row["region"], row["product"])
                if key in keys:
                    raise SystemExit(f"{where}: {key} appears twice among the files")
                keys.add(key)
                rows.append([day, row["region"], row["product"], str(orders), str(revenue), str(units)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clean-dir", required=True, type=pathlib.Path)
    parser.add_argument("--day", required=True, type=as_day, help="YYYY-MM-DD (or a timestamp)")
    parser.add_argument("--wait-seconds", type=float, default=60, help="how long to wait for the server")
    args = parser.parse_args()
    day = args.day.isoformat()
    rows = read_aggregates(args.clean_dir, day)
    # Every field quoted: no data line can read as COPY's end marker (\.).
    data = io.StringIO()
    csv.writer(data, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    wait_for_server(args.wait_seconds)
    # The data is COPY input and the day a psql variable: neither is ever SQL text.
    output = psql(SCRIPT.replace("{data}", data.getvalue()), {"day": day}, csv_output=True)
    loaded = int(next(csv.DictReader(io.StringIO(output)))["loaded"])
    if loaded != len(rows):
        raise SystemExit(f"loaded {loaded} rows, expected {len(rows)}")
    files = len(list(args.clean_dir.glob("*.csv")))
    print(f"load: {loaded} rows for {day} from {files} files into daily_sales (the day's old rows replaced)")
    write_results(rows=loaded)


if __name__ == "__main__":
    main()
