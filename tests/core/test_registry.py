"""The component registry: entry points, did-you-mean, duplicates, direct references."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import BrightnessScorer, QuadrantSegmenter
from iqa_core import registry
from iqa_core.errors import IQAError, PluginNotFound
from iqa_plugins.aggregators.regions import AreaAggregator
from iqa_plugins.segmenters.whole import WholeImage
from iqa_plugins.standards.levels import WordStandard


def fake_ep(name: str, value: str, dist: str | None) -> SimpleNamespace:
    return SimpleNamespace(name=name, value=value, dist=None if dist is None else SimpleNamespace(name=dist))


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list]]:
    groups: dict[str, list] = {}
    monkeypatch.setattr(registry, "entry_points", lambda group: list(groups.get(group, [])))
    registry.refresh()
    yield groups
    monkeypatch.undo()
    registry.refresh()


def test_installed_reference_plugins_are_found() -> None:
    assert {"number", "word", "sentence", "custom"} <= set(registry.available("standards"))
    assert {"mean", "area", "mix_grained", "ensemble"} <= set(registry.available("aggregators"))
    assert "whole" in registry.available("segmenters")
    assert registry.get("segmenters", "whole") is WholeImage
    assert registry.get("aggregators", "area") is AreaAggregator
    entry = next(e for e in registry.entries("standards") if e.name == "word")
    assert entry.distribution == "iqa" and entry.target == "iqa_plugins.standards.levels:WordStandard"


def test_unknown_name_suggests_close_matches_and_lists_available() -> None:
    with pytest.raises(PluginNotFound) as info:
        registry.get("aggregators", "mix_grain")
    msg = str(info.value)
    assert "unknown aggregator 'mix_grain'" in msg
    assert "did you mean 'mix_grained'" in msg
    assert "available: area, ensemble, mean, mix_grained" in msg
    with pytest.raises(PluginNotFound) as info:
        registry.get("standards", "zzzzzz")
    assert "did you mean" not in str(info.value) and "available: " in str(info.value)
    assert isinstance(info.value, IQAError)


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="kinds"):
        registry.get("scorer", "x")


def test_two_distributions_registering_one_name_is_an_error(fake_entry_points: dict) -> None:
    fake_entry_points["iqa.scorers"] = [
        fake_ep("dup", "helpers:BrightnessScorer", "dist-one"),
        fake_ep("dup", "helpers:BrightnessScorer", "dist-two"),
        fake_ep("solo", "helpers:BrightnessScorer", "dist-one"),
        # the same distribution seen twice (e.g. two metadata dirs) is not a conflict
        fake_ep("twice", "helpers:BrightnessScorer", "dist-one"),
        fake_ep("twice", "helpers:BrightnessScorer", "dist-one"),
    ]
    with pytest.raises(registry.DuplicatePlugin) as info:
        registry.get("scorers", "dup")
    msg = str(info.value)
    assert "dist-one" in msg and "dist-two" in msg and "'dup'" in msg
    assert registry.get("scorers", "solo") is BrightnessScorer
    assert registry.get("scorers", "twice") is BrightnessScorer
    names = [(e.name, e.distribution) for e in registry.entries("scorers")]
    assert names.count(("dup", "dist-one")) == 1 and names.count(("dup", "dist-two")) == 1
    assert registry.available("scorers") == ["dup", "solo", "twice"]


def test_refresh_forgets_discovered_entry_points(fake_entry_points: dict) -> None:
    assert registry.available("segmenters") == []
    fake_entry_points["iqa.segmenters"] = [fake_ep("quads", "helpers:QuadrantSegmenter", "x")]
    assert registry.available("segmenters") == []  # cached
    registry.refresh()
    assert registry.get("segmenters", "quads") is QuadrantSegmenter


def test_broken_entry_point_names_distribution_and_target(fake_entry_points: dict) -> None:
    fake_entry_points["iqa.scorers"] = [
        fake_ep("gone", "no_such_module_xyz:Thing", "broken-dist"),
        fake_ep("attr", "helpers:NoSuchClass", "broken-dist"),
        fake_ep("wrong", "helpers:QuadrantSegmenter", "broken-dist"),
    ]
    for name in ("gone", "attr"):
        with pytest.raises(PluginNotFound, match="broken-dist") as info:
            registry.get("scorers", name)
        assert "could not be imported" in str(info.value)
    with pytest.raises(PluginNotFound, match="not a Scorer subclass"):
        registry.get("scorers", "wrong")


def test_module_class_direct_reference() -> None:
    assert registry.get("scorers", "helpers:BrightnessScorer", allow_import=True) is BrightnessScorer
    assert registry.get("standards", "iqa_plugins.standards.levels:WordStandard") is WordStandard
    with pytest.raises(PluginNotFound, match="not a Segmenter subclass"):
        registry.get("segmenters", "helpers:BrightnessScorer", allow_import=True)
    with pytest.raises(PluginNotFound, match="could not be imported"):
        registry.get("segmenters", "helpers:Nope", allow_import=True)
    with pytest.raises(PluginNotFound, match="not a Scorer subclass"):
        registry.get("scorers", "helpers:RECORDER", allow_import=True)


def test_module_class_outside_installed_distributions_is_not_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``this:Nope`` used to print the Zen of Python, and ``./evilmod.py`` ran at validation."""
    marker = tmp_path / "ran"
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Scorer: pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as under `python -m iqa_core`
    sys.modules.pop("this", None)
    with pytest.raises(PluginNotFound, match="'this' is not a module of an installed distribution.*allow_imports"):
        registry.get("scorers", "this:Nope")
    assert "Zen of Python" not in capsys.readouterr().out and "this" not in sys.modules
    with pytest.raises(PluginNotFound, match="'evilmod' is not a module of an installed distribution"):
        registry.get("scorers", "evilmod:Scorer")
    assert not marker.exists()
    with pytest.raises(PluginNotFound, match="not a Scorer subclass"):  # opted in: imported
        registry.get("scorers", "evilmod:Scorer", allow_import=True)
    assert marker.exists()


def test_an_installed_module_shadowed_by_the_current_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "iqa_plugins").mkdir()
    (tmp_path / "iqa_plugins" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "iqa_plugins")
    with pytest.raises(PluginNotFound, match="would be imported from the current directory"):
        registry.get("standards", "iqa_plugins.standards.levels:WordStandard")
    assert not marker.exists()


def test_in_process_register_and_unregister() -> None:
    with pytest.raises(PluginNotFound):
        registry.get("scorers", "inproc_test")
    registry.register("scorers", "inproc_test", BrightnessScorer)
    try:
        assert registry.get("scorers", "inproc_test") is BrightnessScorer
        assert "inproc_test" in registry.available("scorers")
        entry = next(e for e in registry.entries("scorers") if e.name == "inproc_test")
        assert entry.distribution == "<in-process>" and entry.target == "helpers:BrightnessScorer"
    finally:
        registry.unregister("scorers", "inproc_test")
    assert "inproc_test" not in registry.available("scorers")
    with pytest.raises(PluginNotFound):
        registry.get("scorers", "inproc_test")


def test_register_rejects_wrong_base_class() -> None:
    with pytest.raises(PluginNotFound, match="not a Scorer subclass"):
        registry.register("scorers", "bad", QuadrantSegmenter)  # type: ignore[arg-type]
    with pytest.raises(PluginNotFound):
        registry.register("scorers", "bad", object)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        registry.register("widgets", "bad", BrightnessScorer)
    assert "bad" not in registry.available("scorers")


def test_python_m_iqa_core_does_not_run_a_module_from_the_working_directory(tmp_path: Path) -> None:
    """Under `python -m iqa_core` the working directory is on sys.path: `evilmod:Scorer` ran ./evilmod.py."""
    import subprocess

    (tmp_path / "evilmod.py").write_text("open('ran', 'w').close()\n")
    (tmp_path / "r.yaml").write_text("scorers: [{name: 'evilmod:Scorer'}]\nruntime: {store: null}\n")
    cmd = [sys.executable, "-m", "iqa_core", "validate", "r.yaml"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "'evilmod' is not a module of an installed distribution" in out.stderr
    assert not (tmp_path / "ran").exists()
