"""A non-editable install ships both packages and the paper's recipes, and registers every entry point."""

from __future__ import annotations

import shutil
from importlib.metadata import distributions
from pathlib import Path

import pytest

from helpers import pip_install_target

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_install_registers_entry_points(tmp_path: Path) -> None:
    # PEP 639's `license = "Apache-2.0"` needs setuptools >= 77 (pyproject's build-system);
    # this test builds without isolation, with the venv's own setuptools (make setup upgrades it)
    pytest.importorskip("setuptools", minversion="77")
    source, target = tmp_path / "src", tmp_path / "site"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("src", "plugins"):  # a copy, so setuptools' build/ stays out of the checkout
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip_install_target(source, target)
    (dist,) = [d for d in distributions(path=[str(target)]) if d.metadata["Name"] == "iqa"]
    groups = {ep.group: {e.name: e.value for e in dist.entry_points if e.group == ep.group} for ep in dist.entry_points}
    assert groups["iqa.standards"]["word"] == "iqa_plugins.standards.levels:WordStandard"
    assert set(groups["iqa.scorers"]) == {"hf_vlm", "janus_pro", "mplug_owl3", "clip_iqa"}
    assert set(groups["iqa.aggregators"]) == {"mean", "area", "mix_grained", "ensemble"}
    assert set(groups["iqa.segmenters"]) == {"whole", "sam2"}
    assert groups["console_scripts"]["iqa"] == "iqa_core.cli:main"
    assert dist.metadata["License-Expression"] == "Apache-2.0"  # PEP 639, not the deprecated table
    shipped = {p.relative_to(target / "iqa_core" / "recipes").as_posix() for p in target.glob("iqa_core/recipes/**/*")}
    assert {"llm_iqa.yaml", "clip_iqa.yaml", "README.md", "ablations/table3/row8.yaml"} <= shipped
    assert len([p for p in shipped if p.endswith(".yaml")]) == len(
        list((ROOT / "src" / "iqa_core" / "recipes").rglob("*.yaml"))
    )
    # every subpackage ships (pyproject lists them one by one), each with all its modules
    for name, root in (("iqa_core", ROOT / "src" / "iqa_core"), ("iqa_plugins", ROOT / "plugins")):
        for init in root.rglob("__init__.py"):
            package = init.parent.relative_to(root)
            shipped_modules = {p.name for p in (target / name / package).glob("*.py")}
            assert shipped_modules == {p.name for p in init.parent.glob("*.py")}, f"{name}/{package}"
    for ep in dist.entry_points:  # every target module is in the installed tree, not just the source
        if ep.group.startswith("iqa."):
            module = ep.value.partition(":")[0]
            where = target / Path(*module.split("."))  # a module, or a package (mplug_owl3)
            assert where.with_suffix(".py").is_file() or (where / "__init__.py").is_file(), ep.value
