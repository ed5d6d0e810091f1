"""Cost of SAM2's small-region filter alone, on the low-resolution logits of real candidates.

Runs a random-weight SAM2 (``--arch``, image_size 1024, so 256x256 logits) with every
candidate passing the IoU and stability filters (the expensive case: 8x8 points x 3 masks =
192 candidates), keeps the candidates' logits on the device, then times
:func:`iqa_plugins.segmenters._components.fill_small_regions` per labelling backend (the
tensor one that runs on accelerators, scipy that the CPU uses) and checks both give the same
logits. ``--reference`` also times the filter as the plugin ran it before (scipy over holes,
then over islands, each with its own host copy).

    python benchmarks/postprocess.py --device cpu --backends scipy,torch
    python benchmarks/postprocess.py --device cuda --backends torch
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
from benchmarks.measure import sync  # noqa: E402


def candidate_logits(seg: Any, image: np.ndarray) -> Any:
    """(N, 256, 256) low-resolution logits of every candidate of the point grid, on the device."""
    import torch
    from sam2.utils.amg import batch_iterator

    from iqa_plugins.segmenters._fast_amg import predict_low_res

    g = seg._generator
    predictor = g.predictor
    h, w = image.shape[:2]
    predictor.set_image(image)
    points = g.point_grids[0] * np.array((h, w))[None, ::-1]
    lows = []
    with torch.inference_mode():
        for (batch,) in batch_iterator(g.points_per_batch, points):
            pts = torch.as_tensor(batch, dtype=torch.float32, device=predictor.device)
            coords = predictor._transforms.transform_coords(pts, normalize=True, orig_hw=(h, w))
            labels = torch.ones(len(coords), dtype=torch.int, device=coords.device)
            low, _ = predict_low_res(predictor, coords[:, None, :], labels[:, None], g.multimask_output)
            lows.append(low.flatten(0, 1).float())
    predictor.reset_predictor()
    return torch.cat(lows)


def reference_filter(logits: Any, threshold: float, max_area: int) -> Any:
    """The filter as the plugin ran it before: scipy on the host, holes then islands."""
    import torch
    from scipy import ndimage

    def small(binary: np.ndarray) -> np.ndarray:
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = True
        labels, _ = ndimage.label(binary, structure=structure)
        counts = np.bincount(labels.ravel()) <= max_area
        counts[0] = False
        return counts[labels]

    fg = (logits > threshold).cpu().numpy()
    hole = torch.from_numpy(small(~fg)).to(logits.device)
    island = torch.from_numpy(small(fg)).to(logits.device)
    logits = torch.where(hole, threshold + 10.0, logits)
    return torch.where(island, threshold - 10.0, logits)


def main(argv: list[str] | None = None) -> int:
    import torch

    from iqa_plugins.segmenters._components import fill_small_regions
    from iqa_plugins.segmenters.sam2 import SAM2Segmenter
    from iqa_plugins.testing.tiny_sam2 import SAM2_CONFIGS, build_random_sam2

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="tiny", help=f"of {','.join(SAM2_CONFIGS)}")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backends", default="scipy,torch")
    ap.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--min-area", type=int, default=1000, help="min_mask_region_area (Table 2: 1000)")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="iqa-post-"))
    files = build_random_sam2(work / args.arch, SAM2_CONFIGS[args.arch])
    seg = SAM2Segmenter({**files, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "device": args.device})
    seg.load()
    logits = candidate_logits(seg, np.asarray(textured_image(1024, 768)))

    def best(fn: Any) -> tuple[float, Any]:
        times, out = [], None
        for _ in range(args.repeats):
            sync(cuda)
            t = time.perf_counter()
            out = fn()
            sync(cuda)
            times.append(time.perf_counter() - t)
        return min(times), out

    runs: dict[str, Any] = {}
    outputs = {}
    if args.reference:
        runs["reference_scipy_twice"], outputs["reference"] = best(lambda: reference_filter(logits, 0.0, args.min_area))
    for backend in args.backends.split(","):
        runs[backend], outputs[backend] = best(lambda b=backend: fill_small_regions(logits, 0.0, args.min_area, b))
    first = next(iter(outputs.values()))
    identical = all(torch.equal(first, out) for out in outputs.values())
    changed = float((first != logits).float().mean())
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "candidates": list(logits.shape),
        "min_area": args.min_area,
        "pixels_changed": changed,
        "s": runs,
        "identical": identical,
    }
    for name, s in runs.items():
        print(f"{name:>22}: {s * 1e3:9.1f} ms for {logits.shape[0]} candidates of {tuple(logits.shape[1:])}")
    print(f"identical: {identical}; pixels changed by the filter: {changed:.2%}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
