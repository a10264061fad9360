"""Transform: clean raw orders and aggregate revenue per region and product.

    transform.py --raw FILE --out FILE

Run once per region file (or once on a single all-regions file). Duplicate
orders, orders without an amount and orders without a region are dropped;
region and product names are trimmed and lower-cased. The number of
aggregate rows written is the task's result `rows`.
"""

import argparse
import csv
import pathlib
from collections import defaultdict

from common import write_results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw", required=True, type=pathlib.Path)
    parser.add_argument("--out", required=True, type=pathlib.Path)
    args = parser.parse_args()
    seen: set[str] = set()
    dropped = {"duplicate": 0, "no amount": 0, "no region": 0}
    totals: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0])
    with args.raw.open(newline="") as handle:
        for row in csv.DictReader(handle):
            region = row["region"].strip().lower()
            if row["order_id"] in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(row["order_id"])
            if not row["amount"].strip():
                dropped["no amount"] += 1
                continue
            if not region:
                dropped["no region"] += 1
                continue
            total = totals[(row["day"].strip(), region, row["product"].strip().lower())]
            total[0] += 1
            total[1] += float(row["amount"])
            total[2] += int(row["quantity"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["day", "region", "product", "orders", "revenue", "units"])
        for (day, region, product), (orders, revenue, units) in sorted(totals.items()):
            writer.writerow([day, region, product, orders, f"{revenue:.2f}", units])
    kept = len(seen) - dropped["no amount"] - dropped["no region"]
    print(f"transform: kept {kept} orders, dropped {dropped}; {len(totals)} aggregate rows to {args.out}")
    write_results(rows=len(totals))


if __name__ == "__main__":
    main()
