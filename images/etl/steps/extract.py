"""Extract: write the day's raw orders as CSV, as an upstream system would export them.

The data is generated (deterministically from the day) so the example needs
no network; it includes the dirt real exports have: blank amounts, stray
whitespace, inconsistent region names and duplicate order ids.
"""

import argparse
import csv
import pathlib
import random

REGIONS = ["north", "South", " east ", "WEST", "north ", ""]
PRODUCTS = ["widget", "gadget", "gizmo", "doohickey"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--day", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    rng = random.Random(args.day)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "day", "region", "product", "quantity", "amount"])
        for order in range(args.rows):
            order_id = order if rng.random() > 0.02 else max(0, order - 1)  # duplicates
            amount = "" if rng.random() < 0.03 else f"{rng.uniform(1, 500):.2f}"
            writer.writerow(
                [order_id, args.day, rng.choice(REGIONS), rng.choice(PRODUCTS), rng.randint(1, 9), amount]
            )
    print(f"extract: wrote {args.rows} raw orders for {args.day} to {out}")


if __name__ == "__main__":
    main()
