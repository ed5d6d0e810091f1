"""Where a model comes from (a local directory or a Hub id), and a failed load as one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from iqa_core.errors import ModelUnavailable


def is_local_path(model: str) -> bool:
    """A local path rather than a Hub id: it exists, or it is spelled like a path."""
    looks_like_path = model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1
    return looks_like_path or Path(model).expanduser().exists()


def model_source(model: str) -> str:
    """An existing local directory, or a Hub id; a missing local path is a user error."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    if is_local_path(model):
        raise ModelUnavailable(
            model,
            "not a model directory" if path.exists() else "no such directory",
            "Point the model parameter at a directory holding the model's config and weights "
            "(e.g. from `hf download ID --local-dir DIR`), or give a Hub id.",
        )
    return model


@contextmanager
def loading(model: str) -> Iterator[None]:
    """Turn the ways a download or load fails (offline, unknown id, missing package) into
    :class:`ModelUnavailable`, so the CLI prints one clear line instead of a traceback. A Hub
    id is loaded only after one probe says whether the Hub can be reached at all
    (:func:`~iqa_core.weights.hub_unreachable`): offline, the load goes to the cache at once."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    from iqa_core.weights import hub_unreachable, unavailable_reason

    unreachable = None if Path(model).expanduser().is_dir() else hub_unreachable()
    try:
        yield
    except ModelUnavailable:
        raise
    except ImportError as exc:
        raise ModelUnavailable(
            model,
            f"a package it needs is missing or incompatible ({exc})",
            "Install the package it names (see the model card).",
        ) from exc
    except (OSError, HfHubHTTPError, HFValidationError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelUnavailable(model, unavailable_reason(model) if unreachable else first[:300]) from exc
