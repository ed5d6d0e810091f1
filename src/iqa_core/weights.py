"""Where each model of a recipe comes from, and whether it is on this machine (``iqa check``).

A component that loads weights describes them with :meth:`weights` returning
:class:`Weights`: a Hub repository (the whole model snapshot, or named files) or a local
path. :func:`locate` answers, per entry, without downloading anything: a local path that
exists, a complete copy in the Hugging Face cache, on the Hub (downloaded on first use), or
missing. Offline (``HF_HUB_OFFLINE``), or with ``hub=False``, the Hub is never contacted,
so a machine without network gets its answer at once instead of after retries.
"""

from __future__ import annotations

import functools
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


HUB_PROBE_TIMEOUT_S = 5.0


def hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be reached from this process, or None when it can.

    Without this, a machine with no network learns it from huggingface_hub's retries (about
    23 s of "Retrying in Ns" per model) and a raw ``LocalEntryNotFoundError``.
    """
    return "HF_HUB_OFFLINE is set" if offline() else _probe_hub()


@functools.cache
def _probe_hub() -> str | None:
    """One short request to the Hub's endpoint, once per process. When it fails, huggingface_hub
    (and so transformers, open_clip and sam2's downloads) goes offline for the rest of the
    process: local copies and the cache still load, and nothing waits on the network again."""
    from huggingface_hub import constants, get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as exc:  # DNS, refused, timeout, proxy: all mean "not from here, now"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        constants.HF_HUB_OFFLINE = True  # what huggingface_hub.is_offline_mode() reads; transformers asks it
        return f"the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached from this machine ({first[:120]})"
    return None


def unavailable_reason(repo: str) -> str:
    """The reason a Hub model ``repo`` did not load when the Hub is out of reach: no retries were
    spent, and the user reads what to do instead of a huggingface_hub error."""
    return f"{hub_unreachable()}, and there is no copy of {repo!r} in the local Hugging Face cache"


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
    if not hub and not offline():
        return Located(component, w, "missing", "not in the Hugging Face cache (--local: the Hub was not asked)")
    unreachable = hub_unreachable()
    if unreachable is not None:
        return Located(component, w, "missing", f"not in the Hugging Face cache, and {unreachable}")
    found, detail = on_hub(w)
    return Located(component, w, "hub" if found else "missing", detail)
