"""Extract: write the day's raw orders as CSV, as an upstream system would export them.

    extract.py --day D [--rows N] --out-dir DIR   # one DIR/<region>.csv per region
    extract.py --day D [--rows N] --out FILE      # every region in one file

The data is generated (deterministically from the day) so the example needs
no network. The files are split by clean region names (north, south, east,
west), and in --out-dir mode the sorted list of regions is the task's result
`regions` (a JSON array) for a fan-out per region downstream. Inside the rows
is the dirt real exports have: blank amounts, stray whitespace and case in
region and product names, and duplicated orders.
"""

import argparse
import csv
import json
import pathlib
import random

from common import as_day, write_results

REGIONS = ["north", "south", "east", "west"]
PRODUCTS = ["widget", "gadget", "gizmo", "doohickey"]
HEADER = ["order_id", "day", "region", "product", "quantity", "amount"]


def dirty(rng: random.Random, name: str) -> str:
    """The name as a sloppy export spells it: some case and whitespace noise."""
    return rng.choice([name, name.upper(), name.capitalize(), f" {name}", f"{name} "])


def generate(day: str, rows: int) -> dict[str, list[list[object]]]:
    """The day's raw orders, by clean region name."""
    rng = random.Random(day)
    by_region: dict[str, list[list[object]]] = {}
    for order_id in range(rows):
        region = rng.choice(REGIONS)
        region_rows = by_region.setdefault(region, [])
        if region_rows and rng.random() < 0.02:
            region_rows.append(list(region_rows[-1]))  # the same order exported twice
            continue
        amount = "" if rng.random() < 0.03 else f"{rng.uniform(1, 500):.2f}"
        product = dirty(rng, rng.choice(PRODUCTS))
        region_rows.append([order_id, day, dirty(rng, region), product, rng.randint(1, 9), amount])
    return by_region


def write_csv(path: pathlib.Path, rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--day", required=True, type=as_day, help="YYYY-MM-DD (or a timestamp)")
    parser.add_argument("--rows", type=int, default=5000)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out-dir", type=pathlib.Path, help="write DIR/<region>.csv per region")
    target.add_argument("--out", type=pathlib.Path, help="write all regions to one file")
    args = parser.parse_args()
    day = args.day.isoformat()
    by_region = generate(day, args.rows)
    total = sum(len(rows) for rows in by_region.values())
    if args.out:
        write_csv(args.out, [row for region in sorted(by_region) for row in by_region[region]])
        print(f"extract: wrote {total} raw orders for {day} to {args.out}")
        return
    for region, rows in sorted(by_region.items()):
        write_csv(args.out_dir / f"{region}.csv", rows)
        print(f"extract: wrote {len(rows)} raw orders for {day} to {args.out_dir / f'{region}.csv'}")
    write_results(regions=json.dumps(sorted(by_region), separators=(",", ":")))


if __name__ == "__main__":
    main()
