"""Load: upsert the day's aggregates into the SQLite warehouse (idempotent per day)."""

import argparse
import csv
import pathlib
import sqlite3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aggregates", required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    pathlib.Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    with pathlib.Path(args.aggregates).open(newline="") as handle:
        rows = [
            (r["day"], r["region"], r["product"], int(r["orders"]), float(r["revenue"]), int(r["units"]))
            for r in csv.DictReader(handle)
        ]
    days = sorted({row[0] for row in rows})
    with sqlite3.connect(args.db) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS daily_sales (day TEXT, region TEXT, product TEXT, orders INTEGER,"
            " revenue REAL, units INTEGER, PRIMARY KEY (day, region, product))"
        )
        # A re-run of the same day replaces that day's rows instead of doubling them.
        db.executemany("DELETE FROM daily_sales WHERE day = ?", [(d,) for d in days])
        db.executemany("INSERT INTO daily_sales VALUES (?, ?, ?, ?, ?, ?)", rows)
    print(f"load: {len(rows)} rows for {', '.join(days)} into {args.db} table daily_sales")


if __name__ == "__main__":
    main()
