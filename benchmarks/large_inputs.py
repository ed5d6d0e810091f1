"""The CPU cost of a large input before any model runs, with ``regions.prescale`` off and on.

Per image, through the core's own functions: decode (``read_image``; with prescale a JPEG
decodes reduced via ``Views.least_decode``), the resize to the segmenter's working size
(SAM2's long side of 1024), cutting the 9 views of the real workload (``FixedRegions``:
7 fixed masks, the complement, the whole image) with ``Views.cut``, and the final resize a
fixed-size processor does (fit within 384 x 384, bicubic: Janus-Pro's input), so both modes
end with the same sizes. Each (size, mode) runs in a fresh process, so its peak resident
memory is its own (``base_rss_gib``: the interpreter and imports, before any image). Also
timed on the decoded image: shrinking the views with one ``Image.resize`` per view straight
to the input size instead of ``Image.reduce``, and the one copy of the decoded pixels into
an array that any accelerator path would start from.

    python benchmarks/large_inputs.py --sizes 4000x3000,8000x6000 --images 3 --json large.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.images import write_images  # noqa: E402
from benchmarks.measure import peak_rss_gib  # noqa: E402
from benchmarks.regions import FixedRegions  # noqa: E402
from iqa_core.api import LevelProbs, Scorer  # noqa: E402
from iqa_core.images import read_image  # noqa: E402
from iqa_core.pipeline.segment import working_image  # noqa: E402
from iqa_core.pipeline.views import Views  # noqa: E402
from iqa_core.regions import build_regions, reduction  # noqa: E402

INPUT = 384  # Janus-Pro's square input side


class FixedInput(Scorer):
    """Stands for a fixed-size vision processor: views fit within INPUT x INPUT."""

    def input_size(self, size: tuple[int, int]) -> tuple[int, int]:
        scale = INPUT / max(size)
        return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))

    def score(self, views, standard) -> LevelProbs:  # never called: only the views are timed
        raise NotImplementedError


def run_one(paths: list[str], prescale: bool | int) -> dict[str, Any]:
    """Stage times (s/image, mean over ``paths``) and peak RSS for one mode, in this process."""
    base = peak_rss_gib()  # the interpreter and its imports, before any image
    segmenter, scorer = FixedRegions(None, max_side=1024), FixedInput()
    views = Views("bbox", 32, prescale)
    least = views.least_decode(segmenter, [scorer])
    times = dict.fromkeys(("decode", "working_resize", "cut_views", "final_resize", "total"), 0.0)
    alt = {"shrink_by_resize": 0.0, "shrink_by_reduce": 0.0, "pixels_to_array": 0.0}
    decoded: list[tuple[int, int]] = []
    n_views = 0
    for path in paths:
        t0 = time.perf_counter()
        loaded = read_image(path, least=least)
        t1 = time.perf_counter()
        small = working_image(segmenter, loaded.image)
        t2 = time.perf_counter()
        regions = build_regions(segmenter.segment(np.asarray(small)), loaded.size, 0.01)
        t3 = time.perf_counter()
        cut = [views.cut(loaded, r, ("", "", "", ""), scorer).image for r in regions]
        t4 = time.perf_counter()
        final = [v.resize(scorer.input_size(v.size), Image.Resampling.BICUBIC) for v in cut]
        t5 = time.perf_counter()
        times["decode"] += t1 - t0
        times["working_resize"] += t2 - t1
        times["cut_views"] += t4 - t3
        times["final_resize"] += t5 - t4
        times["total"] += (t2 - t0) + (t5 - t3)
        decoded.append(loaded.image.size)
        n_views += len(final)
        del loaded, small, cut, final
    n = len(paths)
    out = {k: round(v / n, 4) for k, v in times.items()}
    out.update(peak_rss_gib=peak_rss_gib(), base_rss_gib=base, decoded=decoded[0], views_per_image=n_views / n)
    if prescale is not False:  # after the peak is read: the array copy below is not part of the pipeline
        for path in paths:
            loaded = read_image(path, least=least)
            regions = build_regions(
                segmenter.segment(np.asarray(working_image(segmenter, loaded.image))), loaded.size, 0.01
            )
            alt.update({k: v + s for (k, v), s in zip(alt.items(), _alternatives(views, loaded, regions, scorer))})
        out.update({k: round(v / n, 4) for k, v in alt.items()})
    return out


def _alternatives(views: Views, loaded: Any, regions: list, scorer: Scorer) -> tuple[float, float, float]:
    """Seconds to shrink every view with one bicubic resize straight to the input size, with
    ``reduce`` (what prescale does), and to copy the decoded pixels into one array."""
    boxes = [views._box(loaded, r) for r in regions]
    t0 = time.perf_counter()
    for x0, y0, x1, y1 in boxes:
        loaded.image.resize(scorer.input_size((x1 - x0, y1 - y0)), Image.Resampling.BICUBIC, box=(x0, y0, x1, y1))
    t1 = time.perf_counter()
    for x0, y0, x1, y1 in boxes:
        factor = reduction((x1 - x0, y1 - y0), scorer.input_size)
        loaded.image.reduce(factor, (x0, y0, x1, y1))
    t2 = time.perf_counter()
    np.asarray(loaded.image).copy()
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def _mode(text: str) -> bool | int:
    word = text.strip().lower()
    return word == "true" if word in ("true", "false") else int(word)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="4000x3000,8000x6000", help="comma-separated WxH")
    ap.add_argument("--images", type=int, default=3, help="JPEGs per size")
    ap.add_argument("--modes", default="false,true", help="regions.prescale values: false, true, a long side")
    ap.add_argument("--workdir", default=None, help="where the JPEGs are written (kept for reruns)")
    ap.add_argument("--json", default=None, help="write the report here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one mode in this process
    args = ap.parse_args(argv)
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(run_one(job["paths"], job["prescale"])))
        return {}
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    modes = [_mode(m) for m in args.modes.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="iqa-large-"))
    paths = write_images(work, sizes, args.images)
    report: dict[str, Any] = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "rows": []}
    print(
        f"{'size':>10} {'prescale':>8} {'decoded':>11} {'decode':>7} {'resize':>7} {'cut':>7} {'final':>7} "
        f"{'total s':>8} {'peak RSS GiB':>12}"
    )
    for size in sizes:
        for prescale in modes:
            job = json.dumps({"paths": [str(p) for p in paths[size]], "prescale": prescale})
            proc = subprocess.run([sys.executable, __file__, "--child", job], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-2000:])
            row = {"size": list(size), "prescale": prescale, **json.loads(proc.stdout)}
            report["rows"].append(row)
            print(
                f"{size[0]}x{size[1]:<5} {str(prescale):>8} {'x'.join(map(str, row['decoded'])):>11} "
                f"{row['decode']:7.3f} {row['working_resize']:7.3f} {row['cut_views']:7.3f} "
                f"{row['final_resize']:7.3f} {row['total']:8.3f} {row['peak_rss_gib']:12.3f}"
            )
            if prescale is not False:
                print(
                    f"{'':>20} shrink by reduce {row['shrink_by_reduce']:.3f} s, by one bicubic resize "
                    f"{row['shrink_by_resize']:.3f} s; decoded pixels to an array {row['pixels_to_array']:.3f} s"
                )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
