"""The large-input benchmark's smoke mode: it runs on small JPEGs and its report holds every stage
(no timings are asserted: speed targets live in the benchmark, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_large_inputs_benchmark_reports_both_modes(tmp_path: Path) -> None:
    out = tmp_path / "large.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "large_inputs.py"), "--sizes", "2400x1800", "--images", "1"]
    cmd += ["--modes", "false,true", "--workdir", str(tmp_path / "w"), "--json", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    off, on = json.loads(out.read_text())["rows"]
    assert (off["prescale"], on["prescale"]) == (False, True)
    assert off["decoded"] == [2400, 1800]  # off: the full decode
    assert on["decoded"] == [1200, 900]  # on: 1/2 keeps SAM2's 1024 x 768, 1/4 would not
    assert off["views_per_image"] == on["views_per_image"] == 9
    stages = ("decode", "working_resize", "cut_views", "final_resize", "total", "peak_rss_gib", "base_rss_gib")
    assert all(row[k] > 0 for row in (off, on) for k in stages)
    assert all(on[k] > 0 for k in ("shrink_by_reduce", "shrink_by_resize", "pixels_to_array"))
