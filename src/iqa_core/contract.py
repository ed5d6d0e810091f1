"""The plugin contract, checked when a component class is registered or loaded.

A plugin that breaks it (a ``load`` that cannot take the standard, a ``Params`` that is not
a pydantic model, an abstract method left out) is reported by name with the rule it
broke, before any image is read, instead of as a traceback from inside the engine.
"""

from __future__ import annotations

import inspect
from typing import Any

from .api import Aggregator, Component, Params, RegionAggregator, Scorer, ScorerAggregator, Segmenter, Standard
from .errors import IQAError

# method -> (how the engine calls it, positional arguments after self)
CALLS: dict[type[Component], dict[str, tuple[str, int]]] = {
    Segmenter: {"load": ("load(self)", 0), "segment": ("segment(self, image)", 1)},
    Scorer: {
        "load": ("load(self, standard)", 1),
        "score": ("score(self, views, standard)", 2),
        "prepare": ("prepare(self, views, standard)", 2),
        "forward": ("forward(self, prepared, standard)", 2),
        "level_values": ("level_values(self, standard)", 1),
    },
    RegionAggregator: {"combine": ("combine(self, scores, regions)", 2)},
    ScorerAggregator: {"combine": ("combine(self, scores, ranges)", 2), "check": ("check(self, ranges)", 1)},
}
STANDARD_PROPERTIES = ("values", "labels", "descriptions", "system", "user")


class PluginContractError(IQAError):
    """A component class that does not follow the plugin contract (``iqa_core.api``)."""


def _callable_with(func: Any, n_args: int) -> bool:
    try:
        inspect.signature(func).bind(None, *([None] * n_args))
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (a builtin): trust it
        return True
    return True


def _parameters(func: Any) -> str:
    """``self, views``: a signature as the contract spells it, without annotations."""
    params = inspect.signature(func).parameters.values()
    return ", ".join(str(p.replace(annotation=inspect.Parameter.empty)) for p in params)


def problems(cls: type[Component]) -> list[str]:
    """Every rule of the contract ``cls`` breaks, one sentence each (empty when it follows it)."""
    out = []
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, Params)):
        out.append("its Params must subclass iqa_core.api.Params (a pydantic model)")
    elif not set(cls.uncached_params) <= set(params.model_fields) | set(Scorer.uncached_params):
        unknown = sorted(set(cls.uncached_params) - set(params.model_fields) - set(Scorer.uncached_params))
        out.append(f"uncached_params names {unknown}, which its Params does not have")
    if not (isinstance(cls.requires, dict) and all(isinstance(v, str) for v in cls.requires.values())):
        out.append('requires must map module names to pip arguments, e.g. {"torch": "iqa[models]"}')
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    if abstract:
        out.append(f"it does not implement {', '.join(abstract)}")
    for base, methods in CALLS.items():
        if not issubclass(cls, base):
            continue
        for name, (call, n_args) in methods.items():
            if name not in abstract and not _callable_with(getattr(cls, name), n_args):
                out.append(f"the engine calls {call}, but it defines {name}({_parameters(getattr(cls, name))})")
    if issubclass(cls, Aggregator) and getattr(cls, "stage", None) not in ("regions", "scorers"):
        out.append("an aggregator subclasses RegionAggregator or ScorerAggregator (stage 'regions' or 'scorers')")
    if issubclass(cls, Standard):
        for name in STANDARD_PROPERTIES:
            if name not in abstract and inspect.isfunction(getattr(cls, name, None)):
                out.append(f"{name} must be a property (or attribute), not a method")
    return out


def check(cls: type[Component], kind: str, where: str) -> None:
    """Raise :class:`PluginContractError` naming the plugin and each rule it breaks."""
    broken = problems(cls)
    if broken:
        raise PluginContractError(f"{kind[:-1]} {where} breaks the plugin contract: {'; '.join(broken)}")
