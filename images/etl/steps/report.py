"""Report: print what the warehouse now holds for the day."""

import argparse
import sqlite3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--day", required=True)
    args = parser.parse_args()
    with sqlite3.connect(args.db) as db:
        total_rows = db.execute("SELECT COUNT(*) FROM daily_sales").fetchone()[0]
        day_rows, orders, revenue = db.execute(
            "SELECT COUNT(*), SUM(orders), ROUND(SUM(revenue), 2) FROM daily_sales WHERE day = ?", (args.day,)
        ).fetchone()
        by_region = db.execute(
            "SELECT region, SUM(orders), ROUND(SUM(revenue), 2) FROM daily_sales WHERE day = ?"
            " GROUP BY region ORDER BY 3 DESC",
            (args.day,),
        ).fetchall()
    print(f"report for {args.day}: table daily_sales has {total_rows} rows ({day_rows} for this day)")
    print(f"  orders: {orders}  revenue: {revenue}")
    for region, region_orders, region_revenue in by_region:
        print(f"  {region:<8} orders={region_orders:<6} revenue={region_revenue}")
    if not day_rows:
        raise SystemExit(f"no rows loaded for {args.day}")


if __name__ == "__main__":
    main()
