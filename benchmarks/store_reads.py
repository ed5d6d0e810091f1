"""What checking rows read back from the store costs (issue 11): per masks row, per result row.

A cached rerun reads one result row per image; a recipe that needs regions reads one masks
row per image and then decodes every mask. The checks (finite values, RLE runs covering the
mask size) must stay small next to that decode and next to reading the image itself.

    python benchmarks/store_reads.py [--masks 50] [--size 1024x768] [--repeat 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from iqa_core.regions import decode_rle, encode_rle
from iqa_core.store import Store


def blob_masks(n: int, width: int, height: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` disc-shaped masks as RLE, like SAM2's object masks at its working resolution."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:height, :width]
    masks = []
    for _ in range(n):
        y, x, r = rng.integers(0, height), rng.integers(0, width), rng.integers(8, min(width, height) // 4)
        masks.append(encode_rle((yy - y) ** 2 + (xx - x) ** 2 < r * r))
    return masks


def per_call_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=50)
    parser.add_argument("--size", default="1024x768", help="mask resolution WxH")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    masks = blob_masks(args.masks, width, height)
    regions = [
        {"kind": "object", "bbox": [0, 0, 10, 10], "area": 0.1, "rle": rle, "scores": {"s": 3.0}} for rle in masks
    ]
    with Store(None) as store:
        store.put_masks("image", "segmenter", masks)
        store.put_result("recipe", "image", 3.0, {"s": 3.0}, regions, (width, height))
        (raw,) = store.db.execute("SELECT masks FROM masks").fetchone()
        report = {
            "masks": args.masks,
            "size": [width, height],
            "rle_chars_per_mask": sum(len(m["counts"]) for m in masks) / len(masks),
            "masks_row_checked_ms": per_call_ms(lambda: store.get_masks("image", "segmenter"), args.repeat),
            "masks_row_json_only_ms": per_call_ms(lambda: json.loads(raw), args.repeat),
            "result_row_checked_ms": per_call_ms(lambda: store.get_result("recipe", "image"), args.repeat),
            "decode_all_masks_ms": per_call_ms(lambda: [decode_rle(m) for m in masks], max(1, args.repeat // 10)),
        }
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
