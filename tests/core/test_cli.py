"""The ``iqa`` command line end to end, with the test scorer registered in-process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import iqa_core
from helpers import BrightnessScorer, Recorder, recipe, write_images
from iqa_core.cli import cli

pytestmark = pytest.mark.usefixtures("test_plugins")


@pytest.fixture
def images(tmp_path: Path) -> Path:
    write_images(tmp_path / "imgs", 3)
    return tmp_path / "imgs"


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_to_csv_with_details(tmp_path: Path, recipe_file: Path, images: Path, test_plugins: Recorder) -> None:
    out = tmp_path / "out" / "scores.csv"
    res = invoke("run", "--recipe", recipe_file, images, "-o", out, "--details")
    assert res.exit_code == 0, res.output
    rows = read_csv(out)
    assert [Path(r["path"]).name for r in rows] == ["img00.png", "img01.png", "img02.png"]
    assert list(rows[0]) == ["path", "score", "test_brightness", "n_regions", "error"]
    for r in rows:
        assert 1.0 <= float(r["score"]) <= 7.0 and r["score"] == r["test_brightness"]
        assert r["n_regions"] == "3" and r["error"] == ""
    regions = read_csv(tmp_path / "out" / "scores.regions.csv")
    assert len(regions) == 12
    assert list(regions[0]) == ["path", "region", "kind", "x0", "y0", "x1", "y1", "area", "test_brightness"]
    first = [r for r in regions if r["path"] == rows[0]["path"]]
    assert [r["kind"] for r in first] == ["global", "object", "object", "complement"]
    assert [(r["x0"], r["y0"], r["x1"], r["y1"]) for r in first][1] == ("0", "0", "32", "24")
    assert [float(r["area"]) for r in first] == [1.0, 0.25, 0.25, 0.5]
    assert "3 of 3 images scored" in res.stderr and "0 failed" in res.stderr
    assert str(out) in res.stderr
    # a rerun comes from the store
    n = len(test_plugins.views)
    res = invoke("run", "--recipe", recipe_file, images, "-o", out)
    assert res.exit_code == 0 and len(test_plugins.views) == n
    assert "3 results and 0 view scores came from the store, 0 views scored in 0 scorer calls" in res.stderr


def test_run_to_jsonl_and_parquet(tmp_path: Path, recipe_file: Path, images: Path) -> None:
    jl = tmp_path / "scores.jsonl"
    res = invoke("run", "--recipe", recipe_file, images, "-o", jl, "--details")
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in jl.read_text().splitlines()]
    assert len(records) == 3 and len(records[0]["regions"]) == 4
    assert records[0]["regions"][1]["kind"] == "object" and records[0]["error"] is None
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "scores.parquet"
    res = invoke("run", "--recipe", recipe_file, images, "-o", out, "--details")
    assert res.exit_code == 0, res.output
    table = pq.read_table(out).to_pylist()
    assert [r["score"] for r in table] == pytest.approx([r["score"] for r in records])
    assert pq.read_table(tmp_path / "scores.regions.parquet").num_rows == 12


def test_run_to_stdout(recipe_file: Path, images: Path) -> None:
    res = invoke("run", "--recipe", recipe_file, images, "--no-store")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "path,score,test_brightness,n_regions,error" and len(lines) == 4


def test_store_options(tmp_path: Path, recipe_file: Path, images: Path, test_plugins: Recorder) -> None:
    other = tmp_path / "elsewhere.sqlite"
    assert invoke("run", "--recipe", recipe_file, images, "--store", other).exit_code == 0
    assert other.is_file() and not (tmp_path / "store.sqlite").exists()
    n = len(test_plugins.views)
    assert invoke("run", "--recipe", recipe_file, images, "--no-store").exit_code == 0
    assert len(test_plugins.views) == 2 * n and not (tmp_path / "store.sqlite").exists()


def test_corrupt_image_exits_1_scores_the_rest_and_names_it(tmp_path: Path, recipe_file: Path, images: Path) -> None:
    bad = images / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not the rest of a jpeg")
    out = tmp_path / "scores.csv"
    res = invoke("run", "--recipe", recipe_file, images, "-o", out)
    assert res.exit_code == 1, res.output
    rows = {Path(r["path"]).name: r for r in read_csv(out)}
    assert len(rows) == 4
    assert rows["broken.jpg"]["score"] == "" and str(bad) in rows["broken.jpg"]["error"]
    assert all(rows[f"img0{i}.png"]["error"] == "" and rows[f"img0{i}.png"]["score"] for i in range(3))
    assert "3 of 4 images scored" in res.stderr and "1 failed" in res.stderr
    assert str(bad) in res.stderr


def test_scorer_failure_is_named_in_the_summary(tmp_path: Path, images: Path) -> None:
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(recipe(None, scorers=[{"name": "test_brightness", "params": {"fail_on": "img01"}}])))
    res = invoke("run", "--recipe", path, images)
    assert res.exit_code == 1
    assert "2 of 3 images scored" in res.stderr
    assert f"failed: {images / 'img01.png'}: scorer 'test_brightness' failed" in res.stderr


def test_misspelled_recipe_field_exits_2_naming_file_and_field(tmp_path: Path, images: Path) -> None:
    path = tmp_path / "bad.yaml"
    data = recipe(None)
    data["regions"]["min_aera"] = data["regions"].pop("min_area")
    path.write_text(yaml.safe_dump(data))
    res = invoke("run", "--recipe", path, images)
    assert res.exit_code == 2
    assert f"{path}: regions.min_aera: unknown field" in res.output
    assert "Traceback" not in res.output


def test_unusable_inputs_and_output_exit_2(tmp_path: Path, recipe_file: Path, images: Path) -> None:
    (tmp_path / "empty").mkdir()
    res = invoke("run", "--recipe", recipe_file, tmp_path / "empty")
    assert res.exit_code == 2 and "no images found" in res.output
    res = invoke("run", "--recipe", recipe_file, images, "-o", tmp_path / "x.xlsx")
    assert res.exit_code == 2 and "unsupported output format" in res.output
    res = invoke("run", "--recipe", tmp_path / "nope.yaml", images)
    assert res.exit_code == 2 and "not found" in res.output


def test_unwritable_output_or_store_fail_before_any_scoring(
    tmp_path: Path, recipe_file: Path, images: Path, test_plugins: Recorder
) -> None:
    (tmp_path / "file").write_text("not a folder")
    res = invoke("run", "--recipe", recipe_file, images, "-o", tmp_path / "file" / "out.csv")
    assert res.exit_code == 2 and "out.csv: cannot create its folder" in res.stderr
    res = invoke("run", "--recipe", recipe_file, images, "-o", tmp_path / "out.csv", "--store", tmp_path / "file")
    assert res.exit_code == 2 and f"store {tmp_path / 'file'} is not a SQLite store" in res.stderr
    assert test_plugins.views == []  # nothing was scored


def test_every_image_failing_still_writes_headers(tmp_path: Path, recipe_file: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"")
    res = invoke("run", "--recipe", recipe_file, tmp_path / "bad", "-o", tmp_path / "o.csv", "--details")
    assert res.exit_code == 1
    assert (tmp_path / "o.regions.csv").read_text().startswith("path,region,kind,x0,y0,x1,y1,area,test_brightness")


def test_validate(tmp_path: Path, recipe_file: Path, test_plugins: Recorder) -> None:
    res = invoke("validate", recipe_file)
    assert res.exit_code == 0 and f"{recipe_file}: ok" in res.output
    assert test_plugins.loads == 0  # no weights loaded
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe_file.read_text().replace("test_brightness", "test_brightnes"))
    res = invoke("validate", recipe_file, bad)
    assert res.exit_code == 2
    assert f"{recipe_file}: ok" in res.output
    assert f"{bad}: scorers[0].name: unknown scorer 'test_brightnes'; did you mean 'test_brightness'" in res.output


def test_validate_reports_every_file(tmp_path: Path, recipe_file: Path) -> None:
    """A recipe that is not UTF-8 used to stop `validate` with a traceback before the next file."""
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(recipe_file.read_text().replace("test_brightness", "t\xe9st").encode("latin-1"))
    last = tmp_path / "last.yaml"
    last.write_text(recipe_file.read_text())
    res = invoke("validate", recipe_file, latin, last)
    assert res.exit_code == 2, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith(f"{recipe_file}: ok")
    assert lines[1].startswith(f"{latin}: not UTF-8 text (byte 0xe9 at offset ")
    assert lines[2].startswith(f"{last}: ok")
    assert lines[3] == "1 of 3 recipes failed validation"


def test_plugins_json_lists_the_reference_components() -> None:
    res = invoke("plugins", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    by = {(r["kind"], r["name"]): r for r in rows}
    for kind, names in {
        "standard": ["number", "word", "sentence", "custom"],
        "aggregator": ["mean", "area", "mix_grained", "ensemble"],
        "segmenter": ["whole"],
    }.items():
        for name in names:
            row = by[(kind, name)]
            assert set(row) == {"name", "kind", "distribution", "description"}
            assert row["distribution"] == "iqa" and row["description"] and "\n" not in row["description"]
            assert not row["description"].startswith("(cannot import")
    assert by[("scorer", "test_brightness")]["distribution"] == "<in-process>"
    text = invoke("plugins")
    assert text.exit_code == 0 and "mix_grained" in text.output and "[iqa]" in text.output


def test_version_and_help() -> None:
    res = invoke("--version")
    assert res.exit_code == 0 and iqa_core.__version__ in res.output and "iqa" in res.output
    res = invoke("--help")
    assert res.exit_code == 0 and "run" in res.output and "validate" in res.output and "plugins" in res.output


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)


def test_help_and_plugins_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from iqa_core.cli import cli, main\n"
        "r = CliRunner().invoke(cli, ['plugins', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(cli, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sam2', 'open_clip') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_console_entry_point_help() -> None:
    """The installed console script path: ``main()`` (plugin commands hook, then click)."""
    code = "import sys; sys.argv = ['iqa', '--help']; from iqa_core.cli import main; main()"
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: iqa" in proc.stdout and "run" in proc.stdout
    script = Path(sys.executable).with_name("iqa")
    if script.exists():
        proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and iqa_core.__version__ in proc.stdout


def test_details_without_output_is_a_usage_error(test_plugins, tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 1)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(None)))
    res = CliRunner().invoke(cli, ["run", "-r", str(path), str(tmp_path / "imgs"), "--details"])
    assert res.exit_code == 2 and "--details needs -o" in res.stderr


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "iqa_core", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("iqa, version")


class _OffLevel(BrightnessScorer):
    """Says the model's top token was a level label for every other view only."""

    def score(self, views, standard):
        levels = super().score(views, standard)
        levels.top_is_level = np.arange(len(views)) % 2 == 0
        return levels


def test_summary_notes_views_whose_top_token_was_not_a_level(tmp_path: Path, images: Path) -> None:
    data = recipe(None, scorers=[{"name": f"{__name__}:_OffLevel", "params": {"batch_size": 4}}])
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    res = invoke("run", "--recipe", path, images, "--allow-import")  # this test module is not installed
    assert res.exit_code == 0, res.output
    assert "prompt-following (views whose top token was a level label): " in res.stderr
    assert "_OffLevel 50%" in res.stderr and "warning" not in res.stderr
