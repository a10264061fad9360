"""Report: print what the warehouse holds for the day, read back from PostgreSQL.

    report.py --day D

Connects like load.py (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
Fails if the day has no rows, so a load that silently loaded nothing does
not pass as a success.
"""

import argparse
import decimal
from collections import defaultdict

from common import as_day, query, wait_for_server

DAY_ROWS = """
SELECT region, product, orders, units, revenue
FROM daily_sales WHERE day = :'day' ORDER BY region, product;
"""
TABLE_ROWS = "SELECT count(*) AS rows, count(DISTINCT day) AS days FROM daily_sales;"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--day", required=True, type=as_day, help="YYYY-MM-DD (or a timestamp)")
    parser.add_argument("--wait-seconds", type=float, default=60, help="how long to wait for the server")
    args = parser.parse_args()
    day = args.day.isoformat()
    wait_for_server(args.wait_seconds)
    rows = query(DAY_ROWS, {"day": day})
    table = query(TABLE_ROWS)[0]

    print(
        f"report for {day}: {len(rows)} rows; table daily_sales: {table['rows']} rows, {table['days']} days"
    )
    line = "  {:<8} {:<10} {:>7} {:>7} {:>12}"
    print(line.format("region", "product", "orders", "units", "revenue"))
    by_region: dict[str, list[decimal.Decimal]] = defaultdict(lambda: [decimal.Decimal(0)] * 3)
    for row in rows:
        print(line.format(row["region"], row["product"], row["orders"], row["units"], row["revenue"]))
        totals = by_region[row["region"]]
        for i, name in enumerate(("orders", "units", "revenue")):
            totals[i] += decimal.Decimal(row[name])
    print("  totals by region:")
    for region, (orders, units, revenue) in sorted(by_region.items()):
        print(f"  {region:<19} {orders:>7} {units:>7} {revenue:>12}")
    orders, units, revenue = (sum((t[i] for t in by_region.values()), decimal.Decimal(0)) for i in range(3))
    print(f"  {'all':<19} {orders:>7} {units:>7} {revenue:>12}")
    if not rows:
        raise SystemExit(f"no rows in daily_sales for {day}")


if __name__ == "__main__":
    main()
