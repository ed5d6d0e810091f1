"""Scale: N distinct small images through ``iqa run``'s path, locally and on local Ray.

For each N (default 200 / 2,000 / 20,000 / 100,000) and executor, a fresh child process
reads a CSV manifest of N distinct 32x32 PNGs (an ``id`` column carried to the output),
scores them with ``TimedScorer`` and streams the rows to a CSV, as ``iqa run`` does
(``iter_rows`` into a ``ResultWriter``); then it runs again on the same store (every
result cached). Per run: images/s, the driver's peak RSS, the store's size, and the
engine's efficiency: the scorer's forward time over the wall time.

``TimedScorer``'s forward sleeps ``--forward-ms`` per batch, as a device's forward keeps the
host free, so efficiency measures what the engine adds around the model: reading, hashing,
store look-ups and writes, batching, the output. Level probabilities come from each view's
mean brightness, so scores follow the pixels.

    python benchmarks/scale.py --json scale.json            # the issue's sizes (about 40 min on 2 cores)
    python benchmarks/scale.py --tiny --json tiny.json      # 60 / 120 images, seconds: CI's check
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import peak_rss_kib  # noqa: E402
from iqa_core.api import LevelProbs, Params, Scorer, Standard, View  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIZES = (200, 2_000, 20_000, 100_000)
TINY_SIZES = (60, 120)
EXECUTORS = ("local", "ray")


class TimedScorer(Scorer):
    """Brightness levels; a forward that takes ``forward_ms`` per batch (slept: the host stays free)."""

    class Params(Params):
        batch_size: int = 16
        forward_ms: float = 20.0

    uncached_params = Scorer.uncached_params | {"forward_ms"}

    def prepare(self, views: Sequence[View], standard: Standard) -> np.ndarray:
        return np.array([float(np.asarray(v.image.convert("L")).mean()) / 255.0 for v in views])

    def forward(self, prepared: np.ndarray, standard: Standard) -> LevelProbs:
        time.sleep(self.params.forward_ms / 1000)
        logits = -((np.arange(standard.k)[None, :] - prepared[:, None] * (standard.k - 1)) ** 2)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        return LevelProbs(probs / probs.sum(axis=1, keepdims=True), standard.values)

    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs:
        return self.forward(self.prepare(views, standard), standard)


def write_images(folder: Path, n: int) -> list[Path]:
    """``n`` distinct 32x32 PNGs (random pixels, seeded by index), written once per folder."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i // 1000:03d}" / f"img{i:06d}.png"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            pixels = np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def write_manifest(path: Path, images: list[Path]) -> Path:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["path", "id"])
        out.writerows([str(p), f"id{i}"] for i, p in enumerate(images))
    return path


def recipe(store: Path, executor: str, forward_ms: float, batch_size: int) -> dict[str, Any]:
    params = {"batch_size": batch_size, "forward_ms": forward_ms}
    return {
        "regions": {"views": ["whole"]},
        "scorers": [{"name": "benchmarks.scale:TimedScorer", "params": params}],
        "decode": "expected",
        "aggregate": {"name": "mean"},
        "runtime": {"store": str(store), "executor": executor, "allow_imports": True, "ray_actors": 1},
    }


def score_once(manifest: Path, data: dict[str, Any], out: Path) -> dict[str, Any]:
    """``iqa run``'s path: manifest in, rows streamed out; the figures of one run."""
    from iqa_core.executors import iter_rows
    from iqa_core.outputs import IMAGE_COLUMNS, ResultWriter
    from iqa_core.pipeline import Pipeline
    from iqa_core.sources import manifest_columns

    start = time.perf_counter()
    pipeline = Pipeline.from_recipe(data)
    columns = manifest_columns([str(manifest)], [*IMAGE_COLUMNS, *pipeline.labels])
    n = failed = 0
    with ResultWriter(out, pipeline.labels, False, columns) as writer:
        for result, row in iter_rows(pipeline, [str(manifest)]):
            writer.write(result, row)
            n += 1
            failed += result.error is not None
    seconds = time.perf_counter() - start
    pipeline.store.close()
    store = Path(data["runtime"]["store"])
    return {
        "images": n,
        "failed": failed,
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 1),
        "peak_rss_mb": round(peak_rss_kib() / 1024, 1),
        "store_mb": round(sum(f.stat().st_size for f in store.parent.glob(store.name + "*")) / 2**20, 2),
        "forward_s": round(pipeline.stats["forward_s"], 3),
        "efficiency": round(pipeline.stats["forward_s"] / seconds, 3),
        "results_cached": pipeline.stats["results_cached"],
        "views_scored": pipeline.stats["views_scored"],
        "output_rows": sum(1 for _ in out.open()) - 1,
    }


def child(n: int, executor: str, cached: bool, work: Path, forward_ms: float, batch_size: int) -> dict[str, Any]:
    """One run in this (fresh) process: its store is fresh, or the previous run's (``cached``)."""
    if executor == "ray":
        import ray

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    store = work / f"store-{executor}-{n}.sqlite"
    if not cached:
        for old in store.parent.glob(store.name + "*"):
            old.unlink()
    manifest = work / f"manifest-{n}.csv"
    out = work / f"out-{executor}-{n}-{'cached' if cached else 'first'}.csv"
    row = score_once(manifest, recipe(store, executor, forward_ms, batch_size), out)
    return {"n": n, "executor": executor, "run": "cached" if cached else "first", **row}


def measure(n: int, executor: str, cached: bool, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])  # Ray workers import TimedScorer
    cmd = [sys.executable, str(Path(__file__).resolve()), "--workdir", str(work), "--child", executor, str(n)]
    cmd += ["--forward-ms", str(args.forward_ms), "--batch-size", str(args.batch_size)]
    if cached:
        cmd.append("--cached")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"n": n, "executor": executor, "run": "cached" if cached else "first", "error": proc.stderr[-3000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flatness(runs: list[dict[str, Any]], key: str, sizes: Sequence[int]) -> dict[str, float | None]:
    """Per executor and run: the largest relative spread of ``key`` over ``sizes`` (None: missing)."""
    out: dict[str, float | None] = {}
    for executor in EXECUTORS:
        for run in ("first", "cached"):
            values = [r.get(key) for r in runs if r["executor"] == executor and r["run"] == run and r["n"] in sizes]
            if len(values) == len(sizes) and all(v for v in values):
                out[f"{executor}/{run}"] = round((max(values) - min(values)) / min(values), 3)
            else:
                out[f"{executor}/{run}"] = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="numbers of images, comma-separated")
    ap.add_argument("--executors", default=",".join(EXECUTORS), help="local, ray or both")
    ap.add_argument("--tiny", action="store_true", help=f"{TINY_SIZES} images: checks the benchmark runs")
    ap.add_argument("--forward-ms", type=float, default=20.0, help="the scorer's forward time per batch")
    ap.add_argument("--batch-size", type=int, default=16, help="views per scorer batch")
    ap.add_argument("--workdir", type=Path, help="images, manifests and stores are kept here")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--child", nargs=2, metavar=("EXECUTOR", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--cached", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.gettempdir()) / "iqa-bench-scale"
    work.mkdir(parents=True, exist_ok=True)
    if args.child:
        executor, n = args.child[0], int(args.child[1])
        print(json.dumps(child(n, executor, args.cached, work, args.forward_ms, args.batch_size)))
        return 0
    sizes = TINY_SIZES if args.tiny else tuple(int(s) for s in args.sizes.split(","))
    images = write_images(work / "images", max(sizes))
    for n in sizes:
        write_manifest(work / f"manifest-{n}.csv", images[:n])
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    settings = {"forward_ms": args.forward_ms, "batch_size": args.batch_size, "sizes": list(sizes)}
    out: dict[str, Any] = {"mode": "tiny" if args.tiny else "full", "machine": machine, "settings": settings}
    out["runs"] = []
    for executor in args.executors.split(","):
        for n in sizes:
            for cached in (False, True):
                row = measure(n, executor, cached, args, work)
                out["runs"].append(row)
                print(json.dumps(row), flush=True)
    judged = [n for n in sizes if n >= 2_000] or list(sizes)
    out["spread"] = {key: flatness(out["runs"], key, judged) for key in ("images_per_s", "peak_rss_mb")}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
