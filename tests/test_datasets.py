"""Adapters against tiny datasets written in each official layout."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iqa_core.errors import IQAError
from iqa_core.evaluation.datasets import DATASETS, DatasetError, Item, load_dataset, subset


def _image(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (value, 64, 32)).save(path)


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_NONNUMERIC).writerows([header, *rows])


def make_koniq(root: Path, n: int = 5) -> Path:
    names = [f"{1000 + i}.jpg" for i in range(n)]
    header = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]
    rows = [[name, 1, 2, 3, 4, 5, 15, 1.5 + i / 2, 0.5, 20.0 + 10 * i] for i, name in enumerate(names)]
    _csv(root / "koniq10k_scores_and_distributions.csv", header, rows)
    for name in names:
        _image(root / "1024x768" / name)
    return root


def make_spaq(root: Path, n: int = 4) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"])
    for i in range(n):
        sheet.append([f"{i + 1:05d}.jpg", 10.0 * (i + 1), 50, 50, 50, 50, 50])
        _image(root / "TestImage" / f"{i + 1:05d}.jpg")
    (root / "Annotations").mkdir(parents=True)
    book.save(root / "Annotations" / "MOS and Image attribute scores.xlsx")
    return root


def make_livec(root: Path, n_test: int = 4) -> Path:
    import scipy.io

    names = [f"t{i}.bmp" for i in range(1, 8)] + [f"{10 + i}.bmp" for i in range(n_test)]
    cells = np.empty((len(names), 1), dtype=object)  # (1162, 1) cell array of strings
    cells[:, 0] = names
    (root / "Data").mkdir(parents=True)
    scipy.io.savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cells})
    mos = np.arange(len(names), dtype=float).reshape(1, -1) * 5 + 20  # (1, 1162) double
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos})
    for i, name in enumerate(names):
        _image(root / "Images" / ("trainingImages" if i < 7 else "") / name)
    return root


def make_kadid(root: Path) -> Path:
    rows = [[f"I01_{d:02d}_{lv:02d}.png", "I01.png", 4.5 - d / 10 - lv / 2, 0.3] for d in (1, 2) for lv in (1, 2, 3)]
    _csv(root / "dmos.csv", ["dist_img", "ref_img", "dmos", "var"], rows)
    for row in rows:
        _image(root / "images" / row[0])
    return root


def make_agiqa(root: Path, image_dir: str = "images") -> Path:
    scores = ["mos_quality", "std_quality", "mos_align", "std_align"]
    header = ["name", "prompt", "adj1", "adj2", "style", *scores]
    prompt = ["a cat, anime style", "", "", "anime style"]
    rows = [[f"AttnGAN_normal_{i:03d}.jpg", *prompt, 1.0 + i, 0.5, 4.0 - i, 0.4] for i in range(3)]
    _csv(root / "data.csv", header, rows)
    for row in rows:
        _image(root / image_dir / row[0])
    return root


def test_koniq(tmp_path):
    items = load_dataset("koniq10k", make_koniq(tmp_path))
    assert [it.name for it in items] == [f"{1000 + i}.jpg" for i in range(5)]
    assert items[0] == Item(tmp_path / "1024x768" / "1000.jpg", 1.5, "1000.jpg")
    zscores = load_dataset("KonIQ-10k", tmp_path, mos_column="MOS_zscore")
    assert [it.mos for it in zscores] == [20.0, 30.0, 40.0, 50.0, 60.0]


def test_spaq(tmp_path):
    items = load_dataset("spaq", make_spaq(tmp_path))
    assert [(it.name, it.mos) for it in items] == [(f"{i:05d}.jpg", 10.0 * i) for i in (1, 2, 3, 4)]
    assert items[0].path == tmp_path / "TestImage" / "00001.jpg"


def test_livec_skips_the_seven_training_images(tmp_path):
    make_livec(tmp_path)
    items = load_dataset("livec", tmp_path)
    assert sorted(it.name for it in items) == ["10.bmp", "11.bmp", "12.bmp", "13.bmp"]
    assert {it.name: it.mos for it in items}["10.bmp"] == 7 * 5 + 20
    everything = load_dataset("livec", tmp_path, include_training=True)
    assert len(everything) == 11
    t1 = next(it for it in everything if it.name == "t1.bmp")
    assert t1.path == tmp_path / "Images" / "trainingImages" / "t1.bmp" and t1.mos == 20


def test_kadid(tmp_path):
    items = load_dataset("kadid10k", make_kadid(tmp_path))
    assert len(items) == 6 and items[0].name == "I01_01_01.png"
    assert items[0].mos == pytest.approx(3.9) and items[0].path.parent == tmp_path / "images"


@pytest.mark.parametrize("folder", ["images", "AGIQA-3K", "."])
def test_agiqa_finds_the_image_folder(tmp_path, folder):
    items = load_dataset("agiqa3k", make_agiqa(tmp_path, folder))
    assert [it.mos for it in items] == [1.0, 2.0, 3.0]
    assert items[0].path == tmp_path / folder / "AttnGAN_normal_000.jpg"
    align = load_dataset("agiqa3k", tmp_path, mos_column="mos_align", image_dir=folder)
    assert [it.mos for it in align] == [4.0, 3.0, 2.0]


def test_agiqa_without_an_image_folder(tmp_path):
    make_agiqa(tmp_path, "somewhere/else")
    with pytest.raises(DatasetError, match="pass image_dir"):
        load_dataset("agiqa3k", tmp_path)
    assert len(load_dataset("agiqa3k", tmp_path, image_dir="somewhere/else")) == 3


def test_generic_csv_resolves_paths_against_its_folder(tmp_path):
    _image(tmp_path / "imgs" / "a.png")
    _image(tmp_path / "b.jpg")
    _csv(
        tmp_path / "sub" / "scores.csv",
        ["file", "score"],
        [["../imgs/a.png", 2.5], [str(tmp_path / "b.jpg"), 4.0]],
    )
    items = load_dataset("csv", tmp_path / "sub" / "scores.csv", path_column="file", mos_column="score")
    assert {it.path.resolve(): it.mos for it in items} == {
        (tmp_path / "imgs" / "a.png").resolve(): 2.5,
        (tmp_path / "b.jpg").resolve(): 4.0,
    }


def test_limit_is_deterministic_and_spread(tmp_path):
    make_kadid(tmp_path)
    first = load_dataset("kadid10k", tmp_path, limit=3)
    assert first == load_dataset("kadid10k", tmp_path, limit=3)
    # items i*6//3 = 0, 2, 4 of the name-sorted list
    assert [it.name for it in first] == ["I01_01_01.png", "I01_01_03.png", "I01_02_02.png"]
    assert len(load_dataset("kadid10k", tmp_path, limit=100)) == 6
    assert subset(list(range(10)), 4) == [0, 2, 5, 7]
    with pytest.raises(DatasetError, match="positive"):
        subset([1, 2], 0)


def test_unknown_dataset_suggests(tmp_path):
    with pytest.raises(DatasetError, match="Did you mean koniq10k") as info:
        load_dataset("koniq", tmp_path)
    assert "available: " + ", ".join(DATASETS) in str(info.value).lower()


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DatasetError, match="koniq10k_scores_and_distributions.csv"):
        load_dataset("koniq10k", tmp_path)
    with pytest.raises(DatasetError, match="AllImages_release.mat"):
        load_dataset("livec", tmp_path)
    with pytest.raises(DatasetError, match="root not found"):
        load_dataset("spaq", tmp_path / "nope")


def test_missing_column_names_file_and_column(tmp_path):
    _csv(tmp_path / "dmos.csv", ["dist_img", "ref_img", "score"], [["a.png", "r.png", 3.0]])
    with pytest.raises(DatasetError, match=r"dmos.csv: missing column 'dmos'"):
        load_dataset("kadid10k", tmp_path)


def test_non_numeric_mos_names_the_row(tmp_path):
    _csv(
        tmp_path / "dmos.csv",
        ["dist_img", "ref_img", "dmos", "var"],
        [["a.png", "r.png", 3.0, 0], ["b.png", "r.png", "n/a", 0]],
    )
    with pytest.raises(DatasetError, match="row 3: dmos is not a number: 'n/a'"):
        load_dataset("kadid10k", tmp_path)


def test_missing_images_are_counted_and_named(tmp_path):
    make_spaq(tmp_path)
    for name in ("00002.jpg", "00004.jpg"):
        (tmp_path / "TestImage" / name).unlink()
    with pytest.raises(IQAError, match=r"2 of 4 listed images are missing") as info:
        load_dataset("spaq", tmp_path)
    assert "00002.jpg" in str(info.value) and "00004.jpg" in str(info.value)
    # a limited run only needs the images it selects (items 0 and 2 of 4)
    assert len(load_dataset("spaq", tmp_path, limit=2)) == 2


def test_unknown_option(tmp_path):
    with pytest.raises(DatasetError, match="unknown option mos_col .*accepted: mos_column"):
        load_dataset("koniq10k", make_koniq(tmp_path), mos_col="MOS")
