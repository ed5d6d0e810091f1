"""Standard-guided scoring with a multimodal LLM: one forward pass, K level-token logits.

The paper greedily generates one answer token. Reading the logits of the K level tokens at
the answer position (the last prompt position, once the chat template has opened the
assistant turn) gives the same argmax with no invalid answers, plus a distribution whose
expectation is a continuous score. All views of a batch go through one left-padded forward
pass that keeps only the last position's logits (``logits_to_keep=1``), so the (N, L, V)
logits of a 7B model are never materialised.

``answer: generate`` is Table 3 row 1 (no standard): the model writes a number, greedily, and
the number becomes a two-level distribution whose expectation is that number.

Nothing here imports torch or transformers at module level: the CLI lists plugins without them.
"""

from __future__ import annotations

import os
import re
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from iqa_core.api import LevelProbs, Params, Scorer, Standard, View
from iqa_core.errors import IQAError, ModelUnavailable
from iqa_core.weights import Weights

if TYPE_CHECKING:
    import torch

SystemRole = Literal["system", "prepend"]


class MLLMParams(Params):
    """Parameters every MLLM scorer shares."""

    model: str
    revision: str | None = None
    local_files_only: bool = False
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(default=8, ge=1)
    answer: Literal["level_token", "generate"] = "level_token"
    max_new_tokens: int = Field(default=8, ge=1)


# ------------------------------------------------------------------------- loading


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
    :class:`ModelUnavailable`, so the CLI prints one clear line instead of a traceback."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

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
        raise ModelUnavailable(model, _reason(model, exc)) from exc


def _reason(model: str, exc: BaseException) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}
    if offline and not Path(model).expanduser().is_dir():
        return "HF_HUB_OFFLINE is set and there is no copy in the local Hugging Face cache"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first[:300]


# ------------------------------------------------------------------------ labels


def answer_tokens(tokenizer: Any, prompt: str, label: str, model: str) -> list[int]:
    """The tokens the model emits to answer ``label`` right after ``prompt``.

    Tokenizers treat a bare label differently from the same text after the prompt: a
    sentencepiece tokenizer encodes "7" alone as "▁7" but "ASSISTANT:7" ends in "7". So the
    answer is encode(prompt + label) minus encode(prompt), never encode(label).
    """
    base = tokenizer.encode(prompt, add_special_tokens=False)
    full = tokenizer.encode(prompt + label, add_special_tokens=False)
    if full[: len(base)] != base:
        tail = tokenizer.convert_ids_to_tokens(base[-2:])
        raise IQAError(
            f"in the tokenizer of {model!r} the prompt's last tokens {tail} merge with the level "
            f"label {label!r}, so the answer cannot be read after the prompt; end the prompt "
            "with a separator the labels do not merge with"
        )
    return full[len(base) :]


def level_token_ids(tokenizer: Any, labels: Sequence[str], model: str, prompt: str) -> list[int]:
    """The one token id of each level label as the answer after ``prompt``, in label order.

    A label that is several tokens cannot be read from one position.
    """
    ids: list[int] = []
    for label in labels:
        encoded = answer_tokens(tokenizer, prompt, label, model)
        if len(encoded) != 1:
            pieces = tokenizer.convert_ids_to_tokens(encoded)
            raise IQAError(
                f"level label {label!r} is {len(encoded)} tokens {pieces} in the tokenizer of "
                f"{model!r} after the prompt; every label must be exactly one token. Use labels "
                "that are single tokens for this model (the digits 1-9 are in the reference "
                "models), or answer: generate."
            )
        ids.append(encoded[0])
    if len(set(ids)) != len(ids):
        raise IQAError(f"level labels {list(labels)} do not map to distinct tokens in {model!r}")
    return ids


def level_probs(logits: torch.Tensor, label_ids: Sequence[int], values: tuple[float, ...]) -> LevelProbs:
    """(N, V) last-position logits -> softmax over the K label tokens, and whether the
    unconstrained argmax was a label token (a diagnostic of prompt-following)."""
    import torch

    ids = torch.tensor(list(label_ids), device=logits.device)
    probs = torch.softmax(logits[:, ids].double(), dim=-1)  # float64: rows sum to 1 exactly enough
    top = torch.isin(logits.argmax(dim=-1), ids)
    return LevelProbs(probs.cpu().numpy(), values, top.cpu().numpy().astype(bool))


# ------------------------------------------------------------------- generated answers


class UnparsedAnswer(ValueError):
    """A generated answer holding no number. A ValueError, not an IQAError: the engine retries
    the batch view by view and turns the failing view into its image's error row."""


NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def parse_answer(text: str) -> float:
    """The first number in a generated answer ("4.3", "Score: 5." -> 4.3, 5.0)."""
    match = NUMBER.search(text)
    if match is None:
        raise UnparsedAnswer(f"the model's answer {text!r} holds no number")
    return float(match.group())


def interpolated_levels(score: float, values: Sequence[float]) -> np.ndarray:
    """A score as probabilities on the two levels around it, so nothing is lost: the expected
    value is the score (clamped to the level range) and the argmax its nearest level.

    ``values`` ascend. E.g. 5.3 on 1..7 -> p(5) = 0.7, p(6) = 0.3.
    """
    levels = np.asarray(values, dtype=np.float64)
    x = float(np.clip(score, levels[0], levels[-1]))
    probs = np.zeros(len(levels))
    upper = int(np.searchsorted(levels, x, side="left"))
    if levels[upper] == x:
        probs[upper] = 1.0
        return probs
    lower = upper - 1
    weight = (x - levels[lower]) / (levels[upper] - levels[lower])
    probs[lower], probs[upper] = 1.0 - weight, weight
    return probs


# ------------------------------------------------------------------------ prompts


def conversation(system: str, user: str, role: SystemRole) -> list[dict[str, Any]]:
    """One image + the standard's texts as chat messages; the image itself travels separately.

    ``prepend`` puts the system text at the start of the user turn, for templates without a
    system role.
    """
    if system and role == "prepend":
        user = f"{system}\n\n{user}"
    turns = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]}]
    if system and role == "system":
        turns.insert(0, {"role": "system", "content": [{"type": "text", "text": system}]})
    return turns


def template_accepts_system(processor: Any, system: str) -> bool:
    """Whether the chat template renders a system turn: some raise, some silently drop it."""
    from jinja2.exceptions import TemplateError

    try:
        text = processor.apply_chat_template(
            conversation(system, "", "system"), add_generation_prompt=True, tokenize=False
        )
    except TemplateError:
        return False
    return system in text


# ------------------------------------------------------------------------ scorer


class MLLMScorer(Scorer):
    """Base of the chat-template MLLM scorers; subclasses say how to load the model."""

    Params = MLLMParams
    requires = {"torch": "iqa[models]", "transformers": "iqa[models]"}

    def weights(self) -> list[Weights]:
        """The model directory, or its Hub snapshot (for ``iqa check``)."""
        model = self.params.model
        if is_local_path(model):
            return [Weights(path=model, files=("config.json",))]
        return [Weights(repo=model, revision=self.params.revision)]

    uncached_params = Scorer.uncached_params | {"local_files_only"}

    @abstractmethod
    def _load(self, source: str) -> tuple[Any, Any]:
        """(model, processor) from a Hub id or local directory."""

    def load(self, standard: Standard) -> None:
        from iqa_plugins._torch import resolve_device, resolve_dtype

        self.device = resolve_device(self.params.device)
        self.dtype = resolve_dtype(self.params.dtype, self.device)
        with loading(self.params.model):
            self.model, self.processor = self._load(model_source(self.params.model))
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:  # e.g. Llama tokenizers; masked out, so any id works
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._label_ids: dict[str, list[int]] = {}
        self._prompts: dict[str, str] = {}
        # a template that cannot render the standard, or labels that cannot be read, fail here
        self.prompt(standard)
        self.label_ids(standard)

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def hub_kwargs(self) -> dict[str, Any]:
        return {"revision": self.params.revision, "local_files_only": self.params.local_files_only}

    def model_kwargs(self) -> dict[str, Any]:
        """Placement and precision for ``from_pretrained``; SDPA attention on CUDA."""
        kwargs: dict[str, Any] = {"dtype": self.dtype, "device_map": str(self.device)}
        if self.device.type == "cuda":
            kwargs["attn_implementation"] = "sdpa"
        return kwargs

    def label_ids(self, standard: Standard) -> list[int]:
        """Level token ids as answers after this standard's prompt. In generate mode labels
        need not be single tokens: the ids are those that are, for the ``top_is_level``
        diagnostic."""
        key = standard.prompt_key()
        if key not in self._label_ids:
            tok, prompt, model = self.tokenizer, self.prompt(standard), self.params.model
            if self.params.answer == "generate":
                answers = (answer_tokens(tok, prompt, label, model) for label in standard.labels)
                self._label_ids[key] = [ids[0] for ids in answers if len(ids) == 1]
            else:
                self._label_ids[key] = level_token_ids(tok, standard.labels, model, prompt)
        return self._label_ids[key]

    def system_role(self, standard: Standard) -> SystemRole:
        return "system" if template_accepts_system(self.processor, standard.system) else "prepend"

    def prompt(self, standard: Standard) -> str:
        """Chat-formatted text up to the opened assistant turn, image placeholder unexpanded."""
        key = standard.prompt_key()
        if key not in self._prompts:
            turns = conversation(standard.system, standard.user, self.system_role(standard))
            self._prompts[key] = self.processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        return self._prompts[key]

    def processor_kwargs(self) -> dict[str, Any]:
        """Extra arguments for the processor call (e.g. Janus' generation mode)."""
        return {}

    def prepare(self, views: Sequence[View], standard: Standard) -> Any:
        """Left-padded model inputs for the views, on the CPU (the engine overlaps this with the
        previous batch's forward pass)."""
        text = self.prompt(standard)
        bos = self.tokenizer.bos_token
        return self.processor(
            text=[text] * len(views),
            images=[[view.image] for view in views],
            padding=True,
            padding_side="left",
            # a template that writes BOS itself must not get a second one
            add_special_tokens=not (bos and text.startswith(bos)),
            return_tensors="pt",
            **self.processor_kwargs(),
        )

    def last_logits(self, inputs: Any) -> torch.Tensor:
        """(N, V) next-token logits after each view's prompt, from one batched forward pass."""
        inputs = inputs.to(self.device, dtype=self.dtype)
        out = self.model(**inputs, logits_to_keep=1, use_cache=False)
        return out.logits[:, -1, :]

    def generated_ids(self, inputs: Any) -> list[list[int]]:
        """The new token ids of each view's greedy answer, from one batched ``generate``."""
        inputs = inputs.to(self.device, dtype=self.dtype)
        out = self.model.generate(
            **inputs,
            max_new_tokens=self.params.max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        return out[:, inputs["input_ids"].shape[1] :].tolist()

    def generated_levels(self, inputs: Any, standard: Standard) -> LevelProbs:
        """Greedy answers parsed as numbers, each represented by :func:`interpolated_levels`."""
        levels = set(self.label_ids(standard))
        rows, top = [], []
        for ids in self.generated_ids(inputs):
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            rows.append(interpolated_levels(parse_answer(text), standard.values))
            top.append(bool(ids) and ids[0] in levels)
        return LevelProbs(np.array(rows), standard.values, np.array(top, dtype=bool))

    def forward(self, inputs: Any, standard: Standard) -> LevelProbs:
        import torch

        with torch.inference_mode():
            if self.params.answer == "generate":
                return self.generated_levels(inputs, standard)
            logits = self.last_logits(inputs)
        return level_probs(logits, self.label_ids(standard), standard.values)

    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs:
        if not views:
            k = len(standard.values)
            return LevelProbs(np.zeros((0, k)), standard.values, np.zeros(0, dtype=bool))
        return self.forward(self.prepare(views, standard), standard)
