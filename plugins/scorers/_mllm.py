"""Standard-guided scoring with a multimodal LLM: one forward pass, K level-token logits.

The paper greedily generates one answer token. Reading the logits of the K level tokens at
the answer position gives the same argmax with no invalid answers, plus a distribution whose
expectation is a continuous score. The answer position is where the reply's first character
goes, which is not always right after the generation prompt: Janus-Pro's template writes
``<|Assistant|>: 7`` after a generation prompt ending ``<|Assistant|>:``, and its byte-level
tokenizer makes that space a token of its own; Qwen3 writes an empty thinking block first. At
load, :func:`reply_opening` finds that text by rendering a reply and the prompt is extended
with it, so the level tokens are read where the model writes the label.

Views are batched by prompt length (:func:`length_buckets`): each bucket is one forward pass
without padding that keeps only the last position's logits (``logits_to_keep=1``), so a
view's scores do not depend on which other views share its batch, and the (N, L, V) logits
of a 7B model are never materialised. When the processor can say how many image tokens a
view of a given size becomes (:meth:`MLLMScorer.image_tokens`, from its own resize rule, as
vLLM asks it), views are bucketed before the processor runs, so each view is processed once;
the same count gives the engine :meth:`MLLMScorer.view_tokens` for batches by token budget.
``pad_slack`` trades exactness for fewer forward passes: prompts that differ by at most that
many tokens share one left-padded pass.

``answer: generate`` is Table 3 row 1 (no standard): the model writes a number, greedily, and
the number becomes a two-level distribution whose expectation is that number.

Nothing here imports torch or transformers at module level: the CLI lists plugins without them.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

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
    batch_tokens: int | None = Field(
        default=None,
        ge=1,
        description="at most this many prompt tokens (view_tokens) in one batch, filled by the engine "
        "with views of similar length; null: only batch_size counts",
    )
    pad_slack: int = Field(
        default=0,
        ge=0,
        description="views whose prompts differ by at most this many tokens share one left-padded "
        "forward pass; 0: only equal-length prompts, so a view's scores never depend on its batch",
    )
    answer: Literal["level_token", "generate"] = "level_token"
    max_new_tokens: int = Field(default=8, ge=1)
    attn_implementation: str | dict[str, str] | None = Field(
        default=None,
        description="transformers' attention for from_pretrained, for the whole model or per part "
        "(e.g. {vision_config: flash_attention_2, text_config: sdpa}); null: SDPA on CUDA, else the default",
    )


class ChatParams(MLLMParams):
    """Parameters of the scorers that build their prompt with the model's chat template."""

    template_options: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments for apply_chat_template, e.g. {enable_thinking: false} for Qwen3",
    )
    answer_stem: str = Field(
        default="",
        description="text written after the assistant turn's opening, before the level label "
        "(e.g. 'The quality of the image is '); end it as the model would before the label",
    )


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

Render = Callable[[list[dict[str, Any]], bool], str]
"""(turns, add_generation_prompt) -> the chat template's text."""


def assistant_turn(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def reply_opening(render: Render, turns: list[dict[str, Any]], label: str, model: str) -> str:
    """What the chat template writes between the generation prompt and a reply's first character.

    Renders the conversation with an assistant turn holding ``label`` (no generation prompt)
    and with the generation prompt alone; the text between the end of the prompt and the label
    is the opening: a space (Janus-Pro, LLaVA-1.5), nothing (Qwen2.5), an empty thinking block
    (Qwen3 unless ``enable_thinking`` is false).
    """
    prompt = render(turns, True)
    replied = render([*turns, assistant_turn(label)], False)
    at = replied.find(label, len(prompt))
    if not replied.startswith(prompt) or at < 0:
        raise IQAError(
            f"the chat template of {model!r} does not render a reply after its generation prompt "
            f"(prompt ends {prompt[-40:]!r}, a reply {label!r} renders as {replied[len(prompt) - 40 :]!r}), "
            "so the answer position cannot be found; use a model whose template writes replies after "
            "the generation prompt"
        )
    return replied[len(prompt) : at]


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


def template_accepts_system(render: Render, system: str) -> bool:
    """Whether the chat template renders a system turn: some raise, some silently drop it."""
    from jinja2.exceptions import TemplateError

    try:
        text = render(conversation(system, "", "system"), True)
    except TemplateError:
        return False
    return system in text


# ------------------------------------------------------------------------ views

MAX_ASPECT = 100.0
MIN_SIDE = 4
"""Views thinner than 1:MAX_ASPECT or MIN_SIDE pixels are padded: image processors reject
(Qwen2-VL: over 1:200) or misread extreme slivers (a 384x3 array looks channels-first, a
1-pixel one too, and transformers' processors guess the channel axis from the shape)."""


def sliver_padded_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of a view after padding to at least MIN_SIDE and at most 1:MAX_ASPECT."""
    w, h = size
    return max(w, MIN_SIDE, int(np.ceil(h / MAX_ASPECT))), max(h, MIN_SIDE, int(np.ceil(w / MAX_ASPECT)))


def fitted_size(size: tuple[int, int], max_pixels: int | None) -> tuple[int, int]:
    """(width, height) :func:`fit_view` gives a view of ``size``, without the pixels."""
    w, h = sliver_padded_size(size)
    if max_pixels is not None and w * h > max_pixels:
        scale = (max_pixels / (w * h)) ** 0.5
        return max(1, int(w * scale)), max(1, int(h * scale))
    return w, h


def fit_view(image: Any, max_pixels: int | None) -> Any:
    """``image`` padded (black, centred) to at least MIN_SIDE pixels and at most 1:MAX_ASPECT,
    and scaled down to at most ``max_pixels`` pixels, so a 12-megapixel whole view does not
    become thousands of tokens."""
    from PIL import Image, ImageOps

    padded = sliver_padded_size(image.size)
    if padded != image.size:
        image = ImageOps.pad(image, padded, color=0)  # scales a view smaller than MIN_SIDE up, pads the rest
    size = fitted_size(image.size, max_pixels)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


def group_lengths(lengths: Sequence[int], slack: int = 0) -> list[list[int]]:
    """Row indices grouped so that lengths within a group differ by at most ``slack``.

    0: equal lengths, groups in first-seen order. Otherwise rows are sorted by length and a
    group closes when the next row is more than ``slack`` longer than the group's shortest.
    """
    if slack == 0:
        groups: dict[int, list[int]] = {}
        for row, length in enumerate(lengths):
            groups.setdefault(int(length), []).append(row)
        return list(groups.values())
    out: list[list[int]] = []
    shortest = 0
    for row in sorted(range(len(lengths)), key=lambda r: lengths[r]):
        if not out or lengths[row] - shortest > slack:
            out.append([])
            shortest = lengths[row]
        out[-1].append(row)
    return out


def length_buckets(attention_mask: torch.Tensor, slack: int = 0) -> list[list[int]]:
    """Row indices grouped by prompt length (unpadded token count), see :func:`group_lengths`."""
    return group_lengths([int(n) for n in attention_mask.sum(dim=1).tolist()], slack)


def spread(attention_mask: torch.Tensor) -> int:
    """Longest minus shortest prompt in a left-padded batch."""
    lengths = attention_mask.sum(dim=1)
    return int(lengths.max() - lengths.min())


# ------------------------------------------------------------------------ scorer


class Prepared(NamedTuple):
    """Model inputs for ``n`` views as equal-length buckets: (the views' rows, their inputs)."""

    n: int
    buckets: list[tuple[list[int], Any]]


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

    # the attention kernel changes numbers as little as the device does (and ``device`` is uncached)
    uncached_params = Scorer.uncached_params | {"local_files_only", "attn_implementation"}
    keyed_when_set = frozenset({"pad_slack"})  # added later: stored scores of exact-length runs stay valid

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
        self._text_tokens = self.text_tokens(standard)

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def hub_kwargs(self) -> dict[str, Any]:
        return {"revision": self.params.revision, "local_files_only": self.params.local_files_only}

    def model_kwargs(self) -> dict[str, Any]:
        """Placement, precision and attention for ``from_pretrained``: ``attn_implementation``
        if set, else SDPA on CUDA. Without flash attention, Qwen2.5-VL's vision tower runs one
        attention call per 112-pixel window (thousands per batch at 7B size); flash attention
        runs each layer's windows in one varlen call."""
        kwargs: dict[str, Any] = {"dtype": self.dtype, "device_map": str(self.device)}
        if self.params.attn_implementation is not None:
            kwargs["attn_implementation"] = self.params.attn_implementation
        elif self.device.type == "cuda":
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

    # -------------------------------------------------------------- chat template

    def render(self, turns: list[dict[str, Any]], generation: bool) -> str:
        """The chat template's text for ``turns`` (with the generation prompt if ``generation``)."""
        return self.processor.apply_chat_template(
            turns, add_generation_prompt=generation, tokenize=False, **self.params.template_options
        )

    def system_role(self, standard: Standard) -> SystemRole:
        return "system" if template_accepts_system(self.render, standard.system) else "prepend"

    def opened_reply(self, turns: list[dict[str, Any]], standard: Standard) -> str:
        """The generation prompt, what the template writes before the reply's first character,
        and the answer stem: the text after which the model writes the level label."""
        opening = reply_opening(self.render, turns, standard.labels[0], self.params.model)
        return self.render(turns, True) + opening + self.params.answer_stem

    def prompt(self, standard: Standard) -> str:
        """Chat-formatted text up to where the reply's label goes, image placeholder unexpanded."""
        key = standard.prompt_key()
        if key not in self._prompts:
            turns = conversation(standard.system, standard.user, self.system_role(standard))
            self._prompts[key] = self.opened_reply(turns, standard)
        return self._prompts[key]

    # -------------------------------------------------------------- inputs

    def fit(self, image: Any) -> Any:
        """A view's image as the processor gets it (slivers padded, see :func:`fit_view`)."""
        return fit_view(image, None)

    def fit_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The (width, height) :meth:`fit` gives a view of ``size``, without the pixels."""
        return fitted_size(size, None)

    def image_tokens(self, size: tuple[int, int]) -> int | None:
        """How many tokens the processor makes of a fitted image of ``size`` (width, height),
        from its resize rule without running it: transformers' processors answer this for vLLM
        (``_get_num_multimodal_tokens``). None when the processor cannot say."""
        count = getattr(self.processor, "_get_num_multimodal_tokens", None)
        if count is None:
            return None
        w, h = size
        try:
            return int(count(image_sizes=[(h, w)])["num_image_tokens"][0])
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, NotImplementedError):
            return None

    def text_tokens(self, standard: Standard) -> int | None:
        """Prompt tokens besides the image's for ``standard``, or None when :meth:`image_tokens`
        cannot say or disagrees with the processor on two probe images (then views are
        bucketed by what the processor produces, as before)."""
        from PIL import Image

        text, counts = self.prompt(standard), set()
        for size in ((64, 48), (40, 160)):  # landscape and portrait: variable-size processors differ
            image = self.fit(Image.new("RGB", size))
            n = self.image_tokens(image.size)
            if n is None:
                return None
            counts.add(int(self.process(text, [image])["input_ids"].shape[1]) - n)
        return counts.pop() if len(counts) == 1 else None

    def view_tokens(self, size: tuple[int, int]) -> int | None:
        """Prompt tokens of a view of ``size`` with the standard the scorer was loaded with."""
        text = getattr(self, "_text_tokens", None)
        n = None if text is None else self.image_tokens(self.fit_size(size))
        return None if n is None else text + n

    def processor_kwargs(self) -> dict[str, Any]:
        """Extra arguments for the processor call (e.g. Janus' generation mode)."""
        return {}

    def preprocess_device(self) -> torch.device | None:
        """Where the image processor resizes and normalises: the model's CUDA device when the
        processor is torchvision-backed (transformers 5's default image processors are), so
        the CPU only decodes; None (the CPU) otherwise."""
        if self.device.type != "cuda":
            return None
        from transformers.image_processing_backends import TorchvisionBackend

        return self.device if isinstance(getattr(self.processor, "image_processor", None), TorchvisionBackend) else None

    def process(self, text: str, images: list[Any]) -> Any:
        """One processor call: the prompt once per image, left-padded (images on
        :meth:`preprocess_device` when there is one)."""
        bos = self.tokenizer.bos_token
        device = self.preprocess_device()
        return self.processor(
            text=[text] * len(images),
            images=[[image] for image in images],
            padding=True,
            padding_side="left",
            # a template that writes BOS itself must not get a second one
            add_special_tokens=not (bos and text.startswith(bos)),
            return_tensors="pt",
            **({} if device is None else {"device": device}),
            **self.processor_kwargs(),
        )

    def prepare(self, views: Sequence[View], standard: Standard) -> Prepared:
        """Model inputs for the views, bucketed by prompt length so no row is padded (with
        ``pad_slack`` 0): a view's scores then do not depend on its batch. The engine overlaps
        this with the previous batch's forward pass.

        When :meth:`image_tokens` knows each view's count, the buckets are formed first and
        each view is processed once; otherwise all views are processed together and, if their
        lengths differ, once more per bucket.
        """
        text, slack = self.prompt(standard), self.params.pad_slack
        images = [self.fit(view.image) for view in views]
        counts = [self.image_tokens(image.size) for image in images] if self._text_tokens is not None else [None]
        if None not in counts:
            buckets = [(rows, self.process(text, [images[i] for i in rows])) for rows in group_lengths(counts, slack)]
            if all(spread(inputs["attention_mask"]) <= slack for _, inputs in buckets):
                return Prepared(len(views), buckets)
        inputs = self.process(text, images)
        rows = length_buckets(inputs["attention_mask"], slack)
        if len(rows) == 1:
            return Prepared(len(views), [(rows[0], inputs)])
        return Prepared(len(views), [(group, self.process(text, [images[i] for i in group])) for group in rows])

    # -------------------------------------------------------------- model

    def last_logits(self, prepared: Prepared) -> torch.Tensor:
        """(N, V) next-token logits after each view's prompt, one forward pass per bucket."""
        parts = []
        for rows, inputs in prepared.buckets:
            inputs = inputs.to(self.device, dtype=self.dtype)
            parts.append((rows, self.model(**inputs, logits_to_keep=1, use_cache=False).logits[:, -1, :]))
        out = parts[0][1].new_empty((prepared.n, parts[0][1].shape[-1]))
        for rows, logits in parts:
            out[rows] = logits
        return out

    def generated_ids(self, prepared: Prepared) -> list[list[int]]:
        """The new token ids of each view's greedy answer, one ``generate`` per bucket."""
        out: list[list[int]] = [[] for _ in range(prepared.n)]
        for rows, inputs in prepared.buckets:
            inputs = inputs.to(self.device, dtype=self.dtype)
            new = self.model.generate(
                **inputs,
                max_new_tokens=self.params.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )[:, inputs["input_ids"].shape[1] :]
            for row, ids in zip(rows, new.tolist(), strict=True):
                out[row] = ids
        return out

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
