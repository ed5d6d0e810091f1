"""Where each model of a recipe comes from, and whether it is on this machine (``iqa check``).

A component that loads weights describes them with :meth:`weights` returning
:class:`Weights`: a Hub repository (the whole model snapshot, or named files) or a local
path. :func:`locate` answers, per entry, without downloading anything: a local path that
exists, a complete copy in the Hugging Face cache, on the Hub (downloaded on first use), or
missing. Offline (``HF_HUB_OFFLINE``), or with ``hub=False``, the Hub is never contacted,
so a machine without network gets its answer at once instead of after retries.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

State = Literal["local", "cached", "hub", "missing"]
SNAPSHOT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class Weights:
    """Weights one component needs.

    ``repo`` is a Hub model id, ``path`` a local file or directory (one of the two).
    ``files`` names the files needed in the repository (or in the ``path`` directory); for a
    repository, empty means a transformers model snapshot (config.json plus the weights,
    sharded or not).
    """

    repo: str | None = None
    path: str | None = None
    files: tuple[str, ...] = ()
    revision: str | None = None

    @property
    def name(self) -> str:
        return self.repo or self.path or "?"

    def download_command(self) -> str:
        """What to run where there is internet: ``hf download`` into the Hugging Face cache."""
        assert self.repo is not None, "a local path has nothing to download"
        parts = ["hf", "download", self.repo, *self.files]
        if self.revision:
            parts += ["--revision", self.revision]
        return " ".join(parts)


@dataclass(frozen=True)
class Located:
    """One row of ``iqa check``: the component, its weights, where they are and a detail."""

    component: str
    weights: Weights
    state: State
    detail: str = ""


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _cached(repo: str, filename: str, revision: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, revision=revision)
    return found if isinstance(found, str) else None


def in_cache(w: Weights) -> bool:
    """Whether the Hugging Face cache holds every file ``w`` needs (all shards of a sharded model)."""
    assert w.repo is not None
    if w.files:
        return all(_cached(w.repo, f, w.revision) for f in w.files)
    if not _cached(w.repo, "config.json", w.revision):
        return False
    for name in SNAPSHOT_WEIGHTS:
        index = _cached(w.repo, f"{name}.index.json", w.revision)
        if index:
            shards = set(json.loads(Path(index).read_text())["weight_map"].values())
            return all(_cached(w.repo, shard, w.revision) for shard in shards)
    return any(_cached(w.repo, name, w.revision) for name in SNAPSHOT_WEIGHTS)


def on_hub(w: Weights, timeout: float = 10.0) -> tuple[bool, str]:
    """(exists, detail) from one metadata request: no download, no retries."""
    from huggingface_hub import HfApi

    assert w.repo is not None
    try:
        info = HfApi().model_info(w.repo, revision=w.revision, timeout=timeout, files_metadata=True)
    except Exception as exc:  # not found, gated, no network: all mean "not obtainable from here now"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return False, f"{type(exc).__name__}: {first[:160]}"

    def needed(filename: str) -> bool:
        return filename in w.files if w.files else filename.endswith((".safetensors", ".bin", ".pt", ".pth"))

    size = sum(s.size or 0 for s in info.siblings or [] if needed(s.rfilename))
    return True, f"downloaded on first use ({size / 1e9:.1f} GB)" if size else "downloaded on first use"


def locate(component: str, w: Weights, hub: bool = True) -> Located:
    """Where ``w`` is: a local path, the cache, the Hub (when ``hub`` and not offline), or missing."""
    if w.path is not None:
        path = Path(w.path).expanduser()
        if not path.exists():
            return Located(component, w, "missing", "no such file or directory")
        absent = [f for f in w.files if not (path / f).is_file()]
        if absent:
            return Located(component, w, "missing", f"no {', '.join(absent)} in this directory")
        return Located(component, w, "local")
    if in_cache(w):
        return Located(component, w, "cached", "in the Hugging Face cache")
    if offline():
        return Located(component, w, "missing", "not in the Hugging Face cache, and HF_HUB_OFFLINE is set")
    if not hub:
        return Located(component, w, "missing", "not in the Hugging Face cache (--local: the Hub was not asked)")
    found, detail = on_hub(w)
    return Located(component, w, "hub" if found else "missing", detail)
