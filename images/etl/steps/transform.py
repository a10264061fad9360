"""Transform: clean the raw orders and aggregate revenue per region and product."""

import argparse
import csv
import pathlib
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    seen: set[str] = set()
    dropped = {"duplicate": 0, "no amount": 0, "no region": 0}
    totals: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0])
    with pathlib.Path(args.raw).open(newline="") as handle:
        for row in csv.DictReader(handle):
            region = row["region"].strip().lower()
            if row["order_id"] in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(row["order_id"])
            if not row["amount"]:
                dropped["no amount"] += 1
                continue
            if not region:
                dropped["no region"] += 1
                continue
            total = totals[(row["day"], region, row["product"])]
            total[0] += 1
            total[1] += float(row["amount"])
            total[2] += int(row["quantity"])
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["day", "region", "product", "orders", "revenue", "units"])
        for (day, region, product), (orders, revenue, units) in sorted(totals.items()):
            writer.writerow([day, region, product, orders, f"{revenue:.2f}", units])
    kept = len(seen) - dropped["no amount"] - dropped["no region"]
    print(f"transform: kept {kept} orders, dropped {dropped}; {len(totals)} aggregate rows to {out}")


if __name__ == "__main__":
    main()
