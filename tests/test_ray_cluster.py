"""`executor: ray` on a two-node Ray cluster on this machine, started and stopped by the test.

The head node has no CPUs, so every step runs on the second node, joined with
``ray start --address``; the driver (an ``iqa run`` process) reaches the cluster through
``runtime.ray_address`` and its store keeper lives on the head. Results and store rows
are the local run's.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from helpers import write_images
from iqa_core.executors import run_pipeline
from iqa_core.pipeline import Pipeline

pytest.importorskip("ray")
TESTS = str(Path(__file__).parent)
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_nodes(address: str, env: dict[str, str], nodes: int, timeout: float = 120) -> None:
    probe = (
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False);"
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(nodes)]:
            return
        time.sleep(2)
    raise AssertionError(f"the cluster at {address} did not reach {nodes} nodes: {out.stderr[-2000:]}")


@pytest.fixture
def two_nodes() -> Iterator[tuple[str, dict[str, str]]]:
    """A head node (no CPUs) and a worker node (2 CPUs); their processes end with the test."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="/tmp/iqa-ray-")  # short: Ray's socket paths live under it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")])}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")  # Ray 2.5x+ asks a token of `ray start` clusters
    head = worker = None
    try:
        head = subprocess.Popen(
            [
                RAY,
                "start",
                "--head",
                "--port",
                str(port),
                "--num-cpus",
                "0",
                "--temp-dir",
                temp,
                "--include-dashboard",
                "false",
                "--block",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_nodes(address, env, 1)
        worker = subprocess.Popen(
            [RAY, "start", "--address", address, "--num-cpus", "2", "--block"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_nodes(address, env, 2)
        yield address, env
    finally:
        for process in (worker, head):
            if process is not None:
                process.terminate()  # `ray start --block` stops the processes it started
        for process in (worker, head):
            if process is not None:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(temp, ignore_errors=True)


def _recipe(store: Path, executor: str, address: str | None = None) -> dict:
    return {
        "segmenter": {"name": "helpers:QuadrantSegmenter"},
        "regions": {"min_area": 0.01, "views": ["bbox", "whole"], "min_view_side": 0},
        "scorers": [{"name": "helpers:BrightnessScorer", "params": {"batch_size": 3}}],
        "decode": "expected",
        "runtime": {
            "store": str(store),
            "chunk_images": 2,
            "executor": executor,
            "allow_imports": True,
            "ray_address": address,
            "ray_actors": 1,
        },
    }


def _rows(store: Path) -> dict[str, set]:
    with sqlite3.connect(store) as db:
        return {
            "masks": set(db.execute("SELECT image, masks FROM masks")),
            "view_scores": set(db.execute("SELECT image, view, probs FROM view_scores")),
            "results": set(db.execute("SELECT image, score, regions FROM results")),
        }


def test_two_node_cluster_scores_like_the_local_run(two_nodes, tmp_path: Path) -> None:
    address, env = two_nodes
    write_images(tmp_path / "imgs", 5)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    local = run_pipeline(Pipeline.from_recipe(_recipe(tmp_path / "local.sqlite", "local")), [tmp_path / "imgs"])

    recipe = tmp_path / "ray.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(tmp_path / "ray.sqlite", "ray", address)))
    out = tmp_path / "out.jsonl"
    run = [sys.executable, "-m", "iqa_core", "run", "-r", str(recipe), str(tmp_path / "imgs"), "-o", str(out)]
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stderr[-3000:]  # the broken file is an error row; the rest are scored
    import json

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == [r.path for r in local]
    assert [r["score"] for r in rows] == [r.score for r in local]
    assert _rows(tmp_path / "ray.sqlite") == _rows(tmp_path / "local.sqlite")
