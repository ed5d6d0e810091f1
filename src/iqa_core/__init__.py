"""iqa: training-free image quality assessment with multimodal LLMs.

``load_recipe(path_or_dict)`` gives a pipeline with ``score(image_or_path)`` and
``score_many(inputs)`` (in this process); ``run_pipeline(pipeline, inputs)`` scores through the
recipe's executor (``runtime.devices``, Ray). Components are plugins found through entry points.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("iqa")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["__version__", "load_recipe", "run_pipeline"]


def __getattr__(name: str):  # lazy, so `import iqa_core` stays cheap
    if name == "load_recipe":
        from .pipeline import load_recipe

        return load_recipe
    if name == "run_pipeline":
        from .executors import run_pipeline

        return run_pipeline
    raise AttributeError(name)
