"""Record the mPLUG-Owl3-7B-240728 faithfulness fixture from the ORIGINAL remote code.

The project's native mPLUG-Owl3 (transformers 5) must reproduce what the published 240728 remote
code computes. That code cannot run beside transformers 5, so this script runs it once, in its own
environment, on a tiny seed-fixed random model, and writes what it computed into
``tests/data/mplug_owl3_240728/`` (described in that folder's README.md). The tests read only
those files; this script is not a CI dependency and nothing in the project imports it.

How to run it (CPU, about a minute):

1. A throwaway environment (transformers 4.56.2: under 4.57 SigLIP returns no hidden states and
   ``forward_image`` fails; the remote code's ``x_sdpa.py`` imports ``icecream``)::

       python3 -m venv /work/scratch/venv456
       /work/scratch/venv456/bin/pip install torch==2.14.1 torchvision==0.29.1 transformers==4.56.2 \\
           einops icecream safetensors tokenizers pillow numpy

2. The original code (no weights): the folder ``models/mPLUG-Owl3-7B-240728/`` of the GitHub
   repository AdaCheng/EgoThink (commit fbafe8f), a copy of the Hub repository's remote code,
   extracted OUTSIDE this repository (never commit it), e.g. ``/work/scratch/owl3ref``::

       git clone https://github.com/AdaCheng/EgoThink /work/scratch/EgoThink
       git -C /work/scratch/EgoThink archive fbafe8f models/mPLUG-Owl3-7B-240728 \
           | tar -x -C /work/scratch --strip-components=1 && mv /work/scratch/mPLUG-Owl3-7B-240728 /work/scratch/owl3ref

3. From the repository root, into an empty or absent folder::

       /work/scratch/venv456/bin/python tools/mplug_owl3_reference/make_fixture.py \\
           --original /work/scratch/owl3ref --out tests/data/mplug_owl3_240728

The original modules import each other as top-level modules, so ``--original`` goes on sys.path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers
import torch
import transformers
from PIL import Image
from record_cases import batch_case, real_case, sensitivity, tiny_case  # this folder, on sys.path as the script's

SEED = 240728
TINY_IMAGE_SIZE = 46  # 3x3 patches of 14 px; like 384 (27 patches, 6 px left over) it is no multiple of 14
REAL_IMAGE_SIZE = 384  # what the original init_processor builds: mPLUGOwl3ImageProcessor(image_size=384)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image|>"]
# Qwen2's pre-tokenizer regex: \p{N} alone, so every digit is its own token.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# The project's word standard, K=7 (plugins/standards/levels.py WordStandard; paper supplementary E).
SYSTEM_7_WORD = (
    "You are a helpful assistant to help me evaluate the quality of the image. "
    "You will be given standards about each quality level. The quality standard is listed as follows: "
    "7: Perfect, 6: Excellent, 5: Good, 4: Fair, 3: Bad, 2: Poor, 1: Very Bad. "
    "The higher the image quality, the higher the score should be. "
    "Please strictly follow the USER's format, otherwise the result will be invalid."
)
USER_7 = (
    "please evaluate the quality of the image and score in [1,2,3,4,5,6,7]. "
    "Only tell me the number. Do not analyze the image."
)

# name -> (width, height, with a system message); sizes chosen for the cut rule (see README).
TINY_CASES = {
    "small_40x40": (40, 40, True),
    "small_40x40_nosystem": (40, 40, False),
    "wide_300x200": (300, 200, True),
    "tall_200x520": (200, 520, True),
    "wide_900x400": (900, 400, True),
    "trunc_160x196": (160, 196, True),
    "trunc_700x330": (700, 330, True),
    "res_159x75": (159, 75, True),
}
REAL_CASES = ["wide_900x400", "trunc_160x196", "trunc_412x119", "res_198x420"]
BATCH_CASE = ["small_40x40", "wide_300x200", "tall_200x520"]
HIDDEN_STATES_CASE = "wide_300x200"  # also keeps every decoder layer's output, to localise a mismatch
EXTRA_IMAGES = {"trunc_412x119": (412, 119), "res_198x420": (198, 420)}  # used by the real-size processor only


def messages_for(with_system: bool) -> list[dict[str, str]]:
    """The project's scoring conversation (plugins/scorers/mplug_owl3.py owl3_messages)."""
    msgs = [{"role": "user", "content": f"<|image|>\n{USER_7}"}, {"role": "assistant", "content": ""}]
    return ([{"role": "system", "content": SYSTEM_7_WORD}] if with_system else []) + msgs


def make_image(name: str, width: int, height: int) -> Image.Image:
    """Seeded RGB noise; above 40000 px in 4x4 blocks so the PNGs stay small."""
    rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    block = 1 if width * height <= 40000 else 4
    low = rng.integers(0, 256, (height // block + 1, width // block + 1, 3), dtype=np.uint8)
    return Image.fromarray(np.repeat(np.repeat(low, block, 0), block, 1)[:height, :width].copy())


def build_tokenizer(out: Path) -> Any:
    """A tiny Qwen2-style byte-level BPE, trained on the prompts, saved for transformers 4 and 5."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    corpus = [SYSTEM_7_WORD, USER_7, "Cut to rows columns with a global view subimg global_view system user assistant"]
    trainer = trainers.BpeTrainer(vocab_size=420, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(corpus * 4, trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)  # appended after the BPE vocabulary, as in Qwen2
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|image|>"],
    )
    fast.save_pretrained(out)
    return PreTrainedTokenizerFast.from_pretrained(out)


def tiny_config(original: Any, vocab_size: int, tokenizer: Any) -> Any:
    """The 240728 config format (configuration_mplugowl3.mPLUGOwl3Config), tiny sizes."""
    cfg = original.mPLUGOwl3Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        hyper_layers=[1, 3],
        max_position_embeddings=2048,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": 14,
            "model_type": "siglip_vision_model",
        },
        architectures=["mPLUGOwl3Model"],
    )
    return cfg


def randomize(model: torch.nn.Module) -> None:
    """Seeded weights with O(1) activations, so every component moves the logits (the default
    init gives near-constant logits and norms of exactly one, which would hide mistakes)."""
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif p.dim() == 1:
                p.copy_(0.2 * noise)
            elif name.endswith(("embed_tokens.weight", "position_embedding.weight")):
                p.copy_(0.5 * noise)
            else:
                p.copy_(noise / np.sqrt(p[0].numel()))


def set_attention(config: Any) -> None:
    """The remote code supports only sdpa (eager raises); SigLIP's stays None under 4.56 unless set."""
    config._attn_implementation = "sdpa"
    config.vision_config._attn_implementation = "eager"


class Original:
    """The original modules, imported from --original."""

    def __init__(self, folder: Path) -> None:
        sys.path.insert(0, str(folder))
        import configuration_mplugowl3
        import image_processing_mplugowl3
        import modeling_hyper_qwen2
        import modeling_mplugowl3
        import processing_mplugowl3

        self.mPLUGOwl3Config = configuration_mplugowl3.mPLUGOwl3Config
        self.mPLUGOwl3Model = modeling_mplugowl3.mPLUGOwl3Model
        self.ImageProcessor = image_processing_mplugowl3.mPLUGOwl3ImageProcessor
        self.Processor = processing_mplugowl3.mPLUGOwl3Processor
        self.hyper = modeling_hyper_qwen2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", type=Path, required=True, help="folder with the 240728 remote code")
    parser.add_argument("--out", type=Path, default=Path("tests/data/mplug_owl3_240728"))
    args = parser.parse_args()
    if not (args.original / "modeling_mplugowl3.py").is_file():
        sys.exit(f"--original {args.original}: no modeling_mplugowl3.py there (see this script's docstring)")
    if not transformers.__version__.startswith("4.56."):
        sys.exit(f"transformers {transformers.__version__}: the original code runs as recorded under 4.56.x only")
    if args.out.exists() and any(args.out.iterdir()):
        sys.exit(f"--out {args.out} is not empty: remove it first (every file in it is rewritten)")
    started = time.perf_counter()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    out: Path = args.out
    (out / "images").mkdir(parents=True, exist_ok=True)
    orig = Original(args.original.resolve())

    tokenizer = build_tokenizer(out)
    vocab_size = -(-len(tokenizer) // 32) * 32  # padded past the tokenizer, as the real 151851 is
    config = tiny_config(orig, vocab_size, tokenizer)
    set_attention(config)
    built = orig.mPLUGOwl3Model(config).float().eval()
    randomize(built)
    built.save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)

    # Everything below runs on the model as users load it: from_pretrained of the saved files.
    loaded_config = orig.mPLUGOwl3Config.from_pretrained(out)
    set_attention(loaded_config)
    model = orig.mPLUGOwl3Model.from_pretrained(out, config=loaded_config, dtype=torch.float32).eval()
    for (name, a), b in zip(built.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), f"{name} changed through save/load"

    tiny_image_processor = orig.ImageProcessor(image_size=TINY_IMAGE_SIZE)
    tiny_processor = orig.Processor(image_processor=tiny_image_processor, tokenizer=tokenizer)
    real_processor = model.init_processor(tokenizer)
    assert real_processor.image_processor.image_size == (REAL_IMAGE_SIZE, REAL_IMAGE_SIZE)

    images: dict[str, Image.Image] = {}
    sizes = {n: (w, h) for n, (w, h, _) in TINY_CASES.items()} | EXTRA_IMAGES
    for name, (w, h) in sizes.items():
        stem = name.removesuffix("_nosystem")
        if stem not in images:
            images[stem] = make_image(stem, w, h)
            images[stem].save(out / "images" / f"{stem}.png")
        images[name] = Image.open(out / "images" / f"{stem}.png").convert("RGB")

    tensors: dict[str, torch.Tensor] = {}
    record: dict[str, Any] = {
        "about": "see README.md",
        "versions": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "tokenizers": tokenizers.__version__,
            "pillow": Image.__version__,
            "numpy": np.__version__,
        },
        "original_code": "github.com/AdaCheng/EgoThink@fbafe8f models/mPLUG-Owl3-7B-240728/",
        "seed": SEED,
        "tiny_image_size": TINY_IMAGE_SIZE,
        "vocab_size": vocab_size,
        "special_token_ids": {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS},
        "cases": {},
        "real_processor_cases": {},
    }
    for name, (_, _, with_system) in TINY_CASES.items():
        stem = name.removesuffix("_nosystem")
        record["cases"][name] = tiny_case(
            name,
            f"images/{stem}.png",
            messages_for(with_system),
            images[name],
            tiny_processor,
            model,
            tokenizer,
            tensors,
            keep_hidden_states=name == HIDDEN_STATES_CASE,
        )
    record["batch_case"] = batch_case(BATCH_CASE, tensors, model, tokenizer.pad_token_id)
    for name in REAL_CASES:
        record["real_processor_cases"][name] = real_case(
            name, f"images/{name}.png", messages_for(True), images[name], real_processor, tokenizer, tensors
        )
    record["sensitivity"] = sensitivity(HIDDEN_STATES_CASE, tensors, model, orig)
    record["seconds"] = round(time.perf_counter() - started, 1)

    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sorted(tensors.items())}, out / "cases.safetensors")
    (out / "cases.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out} in {record['seconds']} s")


if __name__ == "__main__":
    main()
