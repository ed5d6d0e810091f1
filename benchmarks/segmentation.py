"""Segmentation cost: the sam2 plugin's low-resolution path vs the package's stock path.

For each architecture (random weights at real size, image_size 1024, from the package's
config), input size and threshold setting, times ``SAM2Segmenter.segment`` both ways and
splits the time into model (image encoder + mask decoder) and the rest (post-processing:
upsampling, filters, RLE, NMS), and checks the two paths return identical masks.

    python benchmarks/segmentation.py --archs tiny,small --device cpu --json seg.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.images import textured_image  # noqa: E402

SETTINGS = {"paper": {}, "permissive": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}}


def timed_segment(seg: Any, image: np.ndarray, cuda: bool) -> tuple[list[np.ndarray], float, float]:
    """(masks, total s, model s): model = set_image + mask decoder calls."""
    import torch

    gen = seg._generator
    model_s = [0.0]
    stamps: list[float] = []

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def pre(*_: Any) -> None:
        sync()
        stamps.append(time.perf_counter())

    def post(*_: Any) -> None:
        sync()
        model_s[0] += time.perf_counter() - stamps.pop()

    handles = [
        gen.predictor.model.sam_mask_decoder.register_forward_pre_hook(pre),
        gen.predictor.model.sam_mask_decoder.register_forward_hook(post),
        gen.predictor.model.image_encoder.register_forward_pre_hook(pre),
        gen.predictor.model.image_encoder.register_forward_hook(post),
    ]
    try:
        sync()
        t = time.perf_counter()
        masks = seg.segment(image)
        sync()
        total = time.perf_counter() - t
    finally:
        for h in handles:
            h.remove()
    return masks, total, model_s[0]


def main(argv: list[str] | None = None) -> int:
    import torch

    from iqa_plugins.segmenters.sam2 import SAM2Segmenter
    from iqa_plugins.testing.tiny_sam2 import SAM2_CONFIGS, build_random_sam2

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default="tiny,small", help=f"of {','.join(SAM2_CONFIGS)}")
    ap.add_argument("--sizes", default="1024x768,4000x3000")
    ap.add_argument("--settings", default="paper,permissive")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1, help="min over this many calls")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="iqa-seg-"))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    images = {f"{w}x{h}": np.asarray(textured_image(w, h, seed=i)) for i, (w, h) in enumerate(sizes)}
    rows = []
    for arch in args.archs.split(","):
        files = build_random_sam2(work / arch, SAM2_CONFIGS[arch])
        for setting in args.settings.split(","):
            params = {**files, **SETTINGS[setting], "device": args.device}
            segs = {"plugin": SAM2Segmenter(params), "stock": SAM2Segmenter({**params, "fast_postprocess": False})}
            for seg in segs.values():
                seg.load()
            for size, image in images.items():
                row: dict[str, Any] = {"arch": arch, "setting": setting, "size": size}
                out = {}
                for name, seg in segs.items():
                    best = None
                    for _ in range(args.repeats):
                        masks, total, model = timed_segment(seg, image, cuda)
                        if best is None or total < best[0]:
                            best = (total, model)
                    out[name] = masks
                    row[f"{name}_s"] = best[0]
                    row[f"{name}_model_s"] = best[1]
                    row[f"{name}_post_s"] = best[0] - best[1]
                    row[f"{name}_masks"] = len(masks)
                row["identical"] = len(out["plugin"]) == len(out["stock"]) and all(
                    np.array_equal(a, b) for a, b in zip(out["plugin"], out["stock"])
                )
                rows.append(row)
                print(
                    f"{arch:6} {setting:10} {size:>10}  plugin {row['plugin_s']:.3f} s "
                    f"(post {row['plugin_post_s']:.3f})  stock {row['stock_s']:.3f} s "
                    f"(post {row['stock_post_s']:.3f})  masks {row['plugin_masks']}/"
                    f"{row['stock_masks']} identical={row['identical']}",
                    flush=True,
                )
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
