"""A missing optional package is one line naming what to install, with exit 2, before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from helpers import recipe, write_images
from iqa_core.cli import cli
from iqa_core.extras import MissingPackage, is_installed, require


def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` unimportable, as on a core-only install (a None entry blocks imports)."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_require_names_each_missing_module_and_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "matplotlib", "open_clip")
    assert not is_installed("matplotlib") and is_installed("numpy")
    require("nothing missing", {"numpy": "iqa"})
    with pytest.raises(MissingPackage) as err:
        require("clip_iqa", {"numpy": "iqa", "open_clip": "iqa[models]", "matplotlib": "iqa[eval]"})
    assert str(err.value) == "clip_iqa needs open_clip, matplotlib: pip install 'iqa[models]' 'iqa[eval]'"


@pytest.mark.parametrize(
    ("name", "hidden", "expected"),
    [
        ("clip_iqa", ("open_clip",), "scorers[0].name: clip_iqa needs open_clip: pip install 'iqa[models]'"),
        ("ablations/table5/sam_tiny", ("torch",), "segmenter.name: sam2 needs torch: pip install 'iqa[models]'"),
        ("ablations/table5/sam_tiny", ("sam2",), "sam2 needs sam2: pip install 'sam2==1.1.0'"),
    ],
)
def test_recipes_needing_a_missing_package_fail_validation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, hidden: tuple[str, ...], expected: str
) -> None:
    hide(monkeypatch, *hidden)
    write_images(tmp_path / "imgs", 2)
    for args in (["validate", name], ["run", "-r", name, str(tmp_path / "imgs"), "--no-store"]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 2, res.output
        assert expected in res.stderr and "Traceback" not in res.output


def test_eval_and_show_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, test_plugins) -> None:
    hide(monkeypatch, "matplotlib")
    (image,) = write_images(tmp_path / "imgs", 1)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(None)))
    res = CliRunner().invoke(cli, ["show", str(image), "-r", str(path), "-o", str(tmp_path / "f.png")])
    assert res.exit_code == 2 and res.stderr == "error: iqa show needs matplotlib: pip install 'iqa[eval]'\n"
    table = tmp_path / "mos.csv"
    table.write_text(f"path,mos\n{image.name},3\n")
    res = CliRunner().invoke(cli, ["eval", "-r", str(path), "-d", f"csv={table}", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "needs matplotlib: pip install 'iqa[eval]'" in res.stderr
    assert "--no-figures" in res.stderr and not (tmp_path / "o").exists()
