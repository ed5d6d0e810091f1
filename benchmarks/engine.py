"""The streaming engine on the CPU: peak memory on large inputs, and end-to-end images/s.

Every measurement runs in a fresh child process (peak RSS is the child's ``ru_maxrss``),
on tiny random models (SAM2.1 hiera-t at 128 px, tiny Janus) built like downloaded
checkpoints, through ``iqa_core.run_pipeline`` with the documented runtime defaults (docs/recipes.md):

* ``jpeg48``: 40 copies of one 8000x6000 (48-megapixel) JPEG of about 6 MB;
* ``png``: 8 large-pixel PNGs that are small on disk (flat colours), each under the pixel guard;
* ``speed``: 150 textured 640x480 JPEGs, one process, and ``devices: [cpu, cpu]``.

``--baseline DIR`` runs the same measurements against another checkout's code (DIR holds
its ``src/`` and ``plugins/``, e.g. ``git archive d7e4d48 src plugins | tar -x -C DIR``),
so before/after figures come from one command on one machine:

    python benchmarks/engine.py --json engine.json --baseline /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.images import textured_image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CASES = ("jpeg48", "png", "speed", "speed2")


def write_jpeg48(folder: Path, copies: int = 40) -> list[Path]:
    """``copies`` byte-identical copies of one 48-megapixel JPEG (the store dedups nothing in flight)."""
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "big_000.jpg"
    if not first.exists():
        textured_image(8000, 6000, seed=1).save(first, quality=80)
    paths = [first]
    for i in range(1, copies):
        path = folder / f"big_{i:03d}.jpg"
        if not path.exists():
            path.write_bytes(first.read_bytes())
        paths.append(path)
    return paths


def write_pngs(folder: Path, n: int = 8, side: int = 13000) -> list[Path]:
    """``n`` flat-colour PNGs of ``side`` x ``side`` pixels (169 M, under the 179 M guard): tiny on disk."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"flat_{i}.png"
        if not path.exists():
            img = Image.new("RGB", (side, side), (40 + 20 * i, 90, 160))
            draw = ImageDraw.Draw(img)
            draw.rectangle((side // 8, side // 8, side // 2, side // 2), fill=(220, 200, 30))
            draw.ellipse((side // 2, side // 3, side - side // 10, side - side // 6), fill=(30, 160, 60))
            img.save(path, optimize=True)
        paths.append(path)
    return paths


def write_photos(folder: Path, n: int = 150) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"photo_{i:03d}.jpg"
        if not path.exists():
            textured_image(640, 480, seed=i).save(path, quality=90)
        paths.append(path)
    return paths


def build_models(folder: Path) -> dict[str, Any]:
    """Tiny SAM2 and Janus, built once per work folder (random, seeded)."""
    done = folder / "models.json"
    if done.exists():
        return json.loads(done.read_text())
    from iqa_plugins.testing.tiny_sam2 import build_tiny_sam2
    from iqa_plugins.testing.tiny_vlm import build_janus

    models = {"sam2": build_tiny_sam2(folder / "sam2", image_size=128), "janus": str(build_janus(folder / "janus"))}
    done.write_text(json.dumps(models))
    return models


def recipe(models: dict[str, Any], store: Path, devices: list[str] | None = None) -> dict[str, Any]:
    """The documented recipe's shape and runtime defaults, on the tiny models."""
    return {
        "segmenter": {"name": "sam2", "params": {**models["sam2"], "device": "cpu"}},
        "regions": {"min_area": 0.01, "complement": True, "views": ["bbox", "whole"]},
        "standard": {"name": "word", "params": {"levels": 7}},
        "scorers": [{"name": "janus_pro", "params": {"model": models["janus"], "device": "cpu"}}],
        "decode": "argmax",
        "runtime": {"store": str(store), "devices": devices},
    }


def inputs_for(case: str, work: Path, photos: int = 150) -> list[Path]:
    """The case's images, written on first use (by the parent: making them costs memory too)."""
    if case == "jpeg48":
        return write_jpeg48(work / "jpeg48")
    if case == "png":
        return write_pngs(work / "png")
    return write_photos(work / "photos")[:photos]


def child(case: str, work: Path, photos: int) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    from iqa_core.executors import run_pipeline
    from iqa_core.pipeline import Pipeline

    models = build_models(work / "models")
    inputs = inputs_for(case, work, photos)
    store = Path(tempfile.mkdtemp(dir=work)) / "store.sqlite"
    devices = ["cpu", "cpu"] if case == "speed2" else None
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    pipe = Pipeline.from_recipe(recipe(models, store, devices))
    results = run_pipeline(pipe, [str(p) for p in inputs])
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "case": case,
        "images": len(inputs),
        "on_disk_mb": sum(p.stat().st_size for p in inputs) / 2**20,
        "failed": sum(r.error is not None for r in results),
        "views_scored": pipe.stats["views_scored"],
        "busy_s": {k: round(pipe.stats[k], 2) for k in ("segment_s", "prepare_s", "forward_s")},
        "seconds": seconds,
        "images_per_s": len(inputs) / seconds,
        "peak_rss_mb": peak,
        "peak_rss_mb_before_run": rss_before,
        "peak_rss_mb_largest_worker": workers_peak if devices else None,
    }


def measure(case: str, work: Path, baseline: Path | None, photos: int) -> dict[str, Any]:
    """Run ``case`` in a child process, with this checkout's code or ``baseline``'s."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["HF_HUB_OFFLINE"] = "1"
    if baseline is not None:
        pkgs = work / "baseline-pkgs"
        pkgs.mkdir(exist_ok=True)
        link = pkgs / "iqa_plugins"
        if not link.exists():
            link.symlink_to(baseline.resolve() / "plugins")
        env["PYTHONPATH"] = os.pathsep.join([str(baseline.resolve() / "src"), str(pkgs)])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, "--workdir", str(work)]
    cmd += ["--photos", str(photos)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"case": case, "error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    ap.add_argument("--baseline", type=Path, help="another checkout (src/, plugins/) to measure the same way")
    ap.add_argument("--workdir", type=Path, help="models and images are kept here between runs")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--photos", type=int, default=150, help="images in the speed cases (of the 150 written)")
    ap.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.gettempdir()) / "iqa-bench-engine"
    work.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(child(args.child, work, args.photos)))
        return 0
    build_models(work / "models")
    out: dict[str, Any] = {"machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()}, "runs": []}
    for case in args.cases.split(","):
        inputs_for(case, work)
        for code, where in (("baseline", args.baseline), ("this", None)):
            if code == "baseline" and where is None:
                continue
            row = {"code": code, **measure(case, work, where, args.photos)}
            out["runs"].append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
