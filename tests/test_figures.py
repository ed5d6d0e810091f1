"""Figures and the results report are written, non-empty, and readable."""

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from iqa_core.api import ImageResult, Region, RegionScore
from iqa_core.evaluation.figures import (
    emptiest_corner,
    plural,
    regions_figure,
    regions_histogram,
    scatter_with_marginals,
)
from iqa_core.evaluation.metrics import MetricError
from iqa_core.evaluation.report import render_text, write_markdown_report


def _check(paths, stem):
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.stem == stem and p.stat().st_size > 0 for p in paths)
    with Image.open(paths[0]) as img:
        img.verify()
    assert paths[1].read_text().lstrip().startswith("<?xml")


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def test_scatter_with_marginals(tmp_path):
    rng = np.random.default_rng(0)
    mos = rng.uniform(0, 100, 200)
    pred = 1 + 6 * mos / 100 + rng.normal(scale=0.5, size=200)
    pred[3] = np.nan  # an unscored image is left out, not a crash
    _check(scatter_with_marginals(pred, mos, tmp_path / "fig" / "scatter.png", title="SPAQ"), "scatter")


@pytest.mark.parametrize("draw", ["scatter", "regions", "hist"])
def test_a_recipes_caveat_is_on_the_figure(tmp_path, draw):
    caveat = "random weights: not a measurement"
    image = tmp_path / "img.png"
    Image.new("RGB", (40, 30), "grey").save(image)
    result = ImageResult(
        path=str(image), score=3.0, regions=[RegionScore(0, Region("global", (0, 0, 40, 30), 1.0), {"a": 3.0})]
    )
    make = {
        "scatter": lambda out, **kw: scatter_with_marginals([1, 2, 3, 5], [1, 3, 2, 4], out, **kw),
        "regions": lambda out, **kw: regions_figure(image, result, out, **kw),
        "hist": lambda out, **kw: regions_histogram([1, 2, 2], out, **kw),
    }[draw]
    with_caveat = make(tmp_path / "with", caveat=caveat)[1].read_text()
    assert 'id="caveat"' in with_caveat and caveat in with_caveat
    assert 'id="caveat"' not in make(tmp_path / "without")[1].read_text()


def test_regions_figure(tmp_path):
    image = Image.new("RGB", (160, 120), (90, 140, 200))
    image.save(tmp_path / "img.jpg")
    # masks at a 4x smaller working resolution, as a segmenter would return them
    small = np.zeros((30, 40), bool)
    small[5:20, 4:20] = True
    result = ImageResult(
        path="img.jpg",
        score=5.31,
        regions=[
            RegionScore(0, Region("global", (0, 0, 160, 120), 1.0), {"a": 6.0, "b": 5.0}),
            RegionScore(1, Region("object", (16, 20, 80, 80), 0.2, _rle(small)), {"a": 4.0}),
            RegionScore(2, Region("complement", (0, 0, 160, 120), 0.8, _rle(~small)), {"a": 5.0, "b": 6.0}),
        ],
    )
    _check(regions_figure(tmp_path / "img.jpg", result, tmp_path / "regions.svg"), "regions")
    one = ImageResult(path="img.jpg", score=4.0, regions=result.regions[:2])
    regions_figure(tmp_path / "img.jpg", one, tmp_path / "one.svg")
    assert "1 region<" in (tmp_path / "one.svg").read_text()
    svg = (tmp_path / "regions.svg").read_text()
    for label in ("5.31", "2 regions", "4.00", "5.50", "20%", "80%"):
        assert label in svg
    # a PIL image and an unscored image work too
    _check(regions_figure(image, ImageResult(path="x", error="bad"), tmp_path / "empty"), "empty")


def test_regions_histogram(tmp_path):
    _check(regions_histogram([7, 8, 6, 7, 9, 3, 7], tmp_path / "hist"), "hist")


def test_region_counts_get_integer_ticks(tmp_path):
    import re

    regions_histogram([1, 2, 2], tmp_path / "few")  # matplotlib's default ticks here: 0.50, 0.75, ... 2.50
    ticks = re.findall(r">\s*(-?[\d.−]+)\s*<", (tmp_path / "few.svg").read_text())
    assert ticks and all("." not in t for t in ticks), ticks


def test_scatter_draws_the_fit_and_keeps_the_stats_off_the_points(tmp_path):
    rng = np.random.default_rng(1)
    mos = rng.uniform(1, 5, 300)
    pred = 8 - mos + rng.normal(0, 0.3, 300)  # falling: points fill the upper left and lower right
    scatter_with_marginals(pred, mos, tmp_path / "s")
    svg = (tmp_path / "s.svg").read_text()
    assert 'id="fit"' in svg and 'id="stats"' in svg
    assert "PLCC -" in svg and "(fitted -" in svg  # the sign of an inverted predictor stays visible
    x, y = (mos - mos.min()) / np.ptp(mos), (pred - pred.min()) / np.ptp(pred)
    assert emptiest_corner(x, y) in ("upper right", "lower left")


def test_emptiest_corner_counts_points_per_corner():
    x = np.array([0.1, 0.1, 0.9, 0.9, 0.1])
    y = np.array([0.9, 0.95, 0.9, 0.92, 0.1])
    assert emptiest_corner(x, y) == "lower right"
    assert emptiest_corner(np.array([]), np.array([])) == "upper left"


def test_plural():
    assert [plural(n, "region") for n in (0, 1, 2)] == ["0 regions", "1 region", "2 regions"]


ROWS = [
    {"recipe": "llm_iqa", "dataset": "koniq10k", "n": 10, "srcc": 0.8642, "plcc": 0.875},
    {"recipe": "llm_iqa", "dataset": "spaq", "n": 10, "srcc": np.float64(0.907), "plcc": np.nan},
    {"recipe": "whole", "dataset": "spaq", "n": np.int64(10), "srcc": 0.891, "plcc": 0.883},
]


def test_report(tmp_path):
    figs = scatter_with_marginals([1, 2, 3, 5], [1, 3, 2, 4], tmp_path / "out" / "figs" / "s")
    written = write_markdown_report(tmp_path / "out", ROWS, figures=figs)
    assert [p.name for p in written] == ["results.json", "results.md"]
    data = json.loads(written[0].read_text())
    assert data["rows"][1]["plcc"] is None and data["rows"][2]["n"] == 10
    assert data["figures"] == ["figs/s.png", "figs/s.svg"]
    md = written[1].read_text()
    assert "| recipe | koniq10k SRCC | koniq10k PLCC | spaq SRCC | spaq PLCC |" in md
    assert "| llm_iqa | 0.864 | 0.875 | 0.907 | – |" in md
    assert "| whole | – | – | 0.891 | 0.883 |" in md
    assert "![s](figs/s.png)" in md


def test_render_text_aligns_columns():
    main, every = (block.splitlines() for block in render_text(ROWS).split("\n\n"))
    assert len(main) == 3 and len({len(line) for line in main}) == 1
    assert main[1].split() == ["llm_iqa", "0.864", "0.875", "0.907", "–"]
    assert every[0].split()[:4] == ["recipe", "dataset", "n", "n_failed"]
    assert len(every) == 1 + len(ROWS) and len({len(line) for line in every}) == 1


def test_scatter_rejects_constant_scores(tmp_path):
    with pytest.raises(MetricError, match="predicted scores are equal"):
        scatter_with_marginals([1.0, 1.0, 1.0], [1, 2, 3], tmp_path / "s")
