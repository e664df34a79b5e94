"""Eleven ways to adapt one model, each through peft's own implementation, trained the same way (lesson 11).

    model = build_method("dora", "smollm2-135m-instruct")     # peft's DoRA on the base, fp32
    trainable_parameters(model) == model.get_nb_trainable_parameters()[0]
    steps = train_steps(model, batches, learning_rate=1e-3)   # the one loop every method trains in

`METHOD_NAMES` lists them: full fine-tuning (transformers), LoRA, rsLoRA (`use_rslora`), DoRA (`use_dora`),
PiSSA (`init_lora_weights="pissa"`), QLoRA (an NF4 base from bitsandbytes + LoRA), AdaLoRA (its rank
allocator called after every step), GLoRA (peft's `GloraConfig`: W0 + W0·A + B, A and B low-rank), IA3, prompt
tuning and prefix tuning. Every method trains the same
rows in the same batches for the same number of steps with AdamW at a constant learning rate, its loss on
the assistant's reply only (`sft.assistant_only_labels`). Prompt tuning's model returns logits for its
virtual tokens too; `TrimVirtualTokens` cuts them off so lesson 06's `response_nll` and lesson 05's retention
probe read every method the same way.

Prompt and prefix tuning are decoded by `VirtualTokenGreedy`, not by peft's `generate`: with peft 0.21.2 and
transformers 5.24 that path is broken for both (`VirtualTokenGreedy`'s docstring says how; tests/test_methods.py
shows it and checks the replacement against greedy decoding by `forward`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from course_lib.models.base import count_parameters, get_device, set_seed
from course_lib.models.loading import keep_cpu_4bit_trainable, load_base_model, resolve_model
from course_lib.notebook import known_notices
from course_lib.tuning.sft import assistant_only_labels, pad_batch

__all__ = ["METHOD_NAMES", "LORA_FAMILY", "PROMPT_LEARNING", "MethodSpec", "method_config", "build_method",
           "TrimVirtualTokens", "CachelessGreedy", "VirtualTokenGreedy", "nf4_base", "place", "trainable_parameters",
           "lora_family_parameters", "glora_parameters", "ia3_parameters", "virtual_token_parameters",
           "training_batches", "train_steps", "NO_IMPLEMENTATION"]

METHOD_NAMES = ("full", "lora", "rslora", "dora", "pissa", "qlora", "adalora", "glora", "ia3", "prompt_tuning",
                "prefix_tuning")
LORA_FAMILY = ("lora", "rslora", "dora", "pissa", "qlora", "adalora", "glora")
PROMPT_LEARNING = ("prompt_tuning", "prefix_tuning")
# The seed's other LoRA variants: GLoRA is peft's `glora` tuner (peft/tuners/glora, a method here); DyLoRA is not
# among peft 0.21's tuners (peft/tuners/ has no dylora package)
NO_IMPLEMENTATION = {"DyLoRA": "not in peft (no peft/tuners/dylora); only the authors' research code"}
IA3_TARGETS = ["k_proj", "v_proj", "down_proj"]  # peft's default for Llama (TRANSFORMERS_MODELS_TO_IA3_...)


@dataclass
class MethodSpec:
    """The knobs every method shares: one rank for the LoRA family, one count of virtual tokens."""

    r: int = 8  # LoRA rank (AdaLoRA: the average rank it ends at)
    lora_alpha: float = 16.0  # alpha = 2r; rsLoRA scales by alpha/√r instead of alpha/r
    target_modules: str = "all-linear"
    num_virtual_tokens: int = 8  # prompt and prefix tuning
    total_steps: int = 8  # AdaLoRA's schedule needs the run's length


def method_config(name: str, spec: MethodSpec | None = None, tokenizer_path: str = ""):
    """peft's config for `name` (None for full fine-tuning); prompt tuning embeds its init text with the
    tokenizer at `tokenizer_path` (peft loads it by name)."""
    from peft import (AdaLoraConfig, GloraConfig, IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig,
                      PromptTuningInit)  # heavy: only when a model is built

    s = spec or MethodSpec()
    lora = dict(r=s.r, lora_alpha=s.lora_alpha, lora_dropout=0.0, target_modules=s.target_modules,
                task_type="CAUSAL_LM")
    if name == "full":
        return None
    if name in ("lora", "qlora"):
        return LoraConfig(**lora)
    if name == "rslora":
        return LoraConfig(**lora, use_rslora=True)
    if name == "dora":
        return LoraConfig(**lora, use_dora=True)
    if name == "pissa":  # the principal singular vectors of each weight start the adapter; peft's fast
        # randomized SVD (4 subspace iterations, Halko et al.'s `torch.svd_lowrank`) instead of a full SVD per layer
        return LoraConfig(**lora, init_lora_weights="pissa_niter_4")
    if name == "adalora":  # starts at 1.5 r, prunes to r between tinit and total_step - tfinal
        t = s.total_steps
        return AdaLoraConfig(init_r=s.r * 3 // 2, target_r=s.r, lora_alpha=s.lora_alpha, lora_dropout=0.0,
                             target_modules=s.target_modules, tinit=max(1, t // 4), tfinal=max(1, t // 4),
                             deltaT=1, total_step=t, task_type="CAUSAL_LM")
    if name == "glora":  # W_eff = W0 + W0·A + B with A and B each rank r (Xd·Xu, Xd = 0 at the start); the bias
        # paths C, D, E exist only for layers with a bias, and Llama's linear layers have none
        return GloraConfig(r=s.r, target_modules=s.target_modules, config_A_B="lora", config_C="lora",
                           config_D_E="constant", task_type="CAUSAL_LM")
    if name == "ia3":
        return IA3Config(target_modules=IA3_TARGETS, feedforward_modules=["down_proj"], task_type="CAUSAL_LM")
    if name == "prompt_tuning":  # virtual tokens started from the embeddings of a task description
        return PromptTuningConfig(num_virtual_tokens=s.num_virtual_tokens, prompt_tuning_init=PromptTuningInit.TEXT,
                                  prompt_tuning_init_text="Explain the Python function in one line.",
                                  tokenizer_name_or_path=tokenizer_path or None, task_type="CAUSAL_LM")
    if name == "prefix_tuning":
        return PrefixTuningConfig(num_virtual_tokens=s.num_virtual_tokens, task_type="CAUSAL_LM")
    raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHOD_NAMES)}")


class TrimVirtualTokens(torch.nn.Module):
    """A prompt-tuned model whose forward returns logits for the caller's tokens only (not its virtual ones)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        out.logits = out.logits[:, -input_ids.shape[1]:]
        return out

    def generate(self, **kwargs):
        return VirtualTokenGreedy(self.model).generate(**kwargs)


def _stop_tokens(model) -> set[int]:
    config = getattr(model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


class _Decoder(torch.nn.Module):
    """A peft model behind its own greedy `generate`; the forward pass is the model's."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)


class CachelessGreedy(_Decoder):
    """Greedy decoding by full forward passes, no key/value cache: the reference the decoders are checked against.

    Every new token reruns the whole sequence through the model's own `forward` (peft's, virtual tokens
    included): slow, and correct by construction.
    """

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 16, min_new_tokens: int = 0, **kwargs):
        stop = _stop_tokens(self.model)
        ids = input_ids
        mask = attention_mask if attention_mask is not None else torch.ones_like(ids)
        for step in range(max_new_tokens):
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, -1]
            token = logits.argmax(-1, keepdim=True)
            ids, mask = torch.cat([ids, token], 1), torch.cat([mask, torch.ones_like(token)], 1)
            if step + 1 >= min_new_tokens and int(token[0, 0]) in stop:
                break
        return ids


class VirtualTokenGreedy(_Decoder):
    """Greedy decoding of a prompt- or prefix-tuned peft model with a key/value cache, bypassing peft's `generate`.

    Why: with peft 0.21.2 and transformers 5.24 peft's `generate` is wrong for both methods. transformers 5.24
    renamed the cache keyword `past_key_values` to `cache` (LlamaForCausalLM.forward carries
    `@deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")`) and `generate` keeps its cache in
    `model_kwargs["cache"]`, while `PeftModelForCausalLM.prepare_inputs_for_generation` (peft/peft_model.py)
    still reads and writes `model_kwargs["past_key_values"]`:

    - prompt tuning: peft finds no `past_key_values`, so `requires_prompt_injection` is true at every step and
      the virtual tokens' embeddings are put in front of each new token again (the cache grows by n + 1 per
      token): the answer drifts from greedy decoding after a few tokens;
    - prefix tuning: peft writes the prefix to `past_key_values`; the model receives both names, and
      `deprecate_kwarg` (transformers/utils/deprecation.py) keeps `cache`, the empty one, "ignoring deprecated
      `past_key_values`": the prefix is never seen, the answers are the base model's.

    Here the prefill is done by hand, as peft's `forward` does it: prompt tuning puts the virtual tokens'
    embeddings (`get_prompt`) in front of the input's; prefix tuning starts the cache from the prefix's keys and
    values (`get_prompt`, a cache of n positions). Each new token then reads the cache (one position per token).
    Batch size 1 (the course decodes one prompt at a time). tests/test_methods.py checks it against
    `CachelessGreedy`, token for token.
    """

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 16, min_new_tokens: int = 0, **kwargs):
        from peft import PeftType

        if input_ids.shape[0] != 1:
            raise ValueError("VirtualTokenGreedy decodes one prompt at a time (batch size 1).")
        peft_model, config = self.model, self.model.active_peft_config
        base, n = peft_model.get_base_model(), config.num_virtual_tokens
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        mask = torch.cat([torch.ones(1, n, dtype=mask.dtype, device=mask.device), mask], 1)
        if config.peft_type == PeftType.PROMPT_TUNING:
            embeds = peft_model.word_embeddings(input_ids)
            embeds = torch.cat([peft_model.get_prompt(batch_size=1).to(embeds.dtype), embeds], 1)
            out = base(inputs_embeds=embeds, attention_mask=mask, use_cache=True)
        elif config.peft_type == PeftType.PREFIX_TUNING:
            out = base(input_ids=input_ids, attention_mask=mask, cache=peft_model.get_prompt(batch_size=1),
                       use_cache=True)
        else:
            raise ValueError(f"VirtualTokenGreedy decodes prompt or prefix tuning, not {config.peft_type}.")
        stop, ids, cache = _stop_tokens(peft_model), input_ids, out.cache
        logits = out.logits[:, -1]
        for step in range(max_new_tokens):
            token = logits.argmax(-1, keepdim=True)
            ids = torch.cat([ids, token], 1)
            if step + 1 >= max_new_tokens or (step + 1 >= min_new_tokens and int(token[0, 0]) in stop):
                break
            mask = torch.cat([mask, torch.ones_like(token)], 1)
            out = base(input_ids=token, attention_mask=mask, cache=cache, use_cache=True)
            cache, logits = out.cache, out.logits[:, -1]
        return ids


def nf4_base(model_name: str):
    """The base with every linear layer in NF4 (double quantization, fp32 compute): QLoRA's base, and on its own
    the control that tells quantization's cost from training's (bitsandbytes quantizes at load time; on a GPU the
    model is loaded onto it)."""
    from transformers import BitsAndBytesConfig

    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.float32)
    placed = {"device_map": {"": 0}} if torch.cuda.is_available() else {}
    return load_base_model(model_name, quantization_config=bnb, dtype=torch.float32, **placed)


def build_method(name: str, model_name: str, spec: MethodSpec | None = None, seed: int = 0,
                 tokenizer_path: str = ""):
    """The base model (fp32; QLoRA: NF4 with fp32 compute, peft's `prepare_model_for_kbit_training`) with
    `name`'s trainable parts, seeded, on the CPU (QLoRA's: on the GPU if there is one); `place` moves it.

    Prompt tuning's virtual tokens start as the embeddings of a task description, which peft tokenizes
    with the tokenizer it loads from `tokenizer_path` (default: the model's own folder)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    config = method_config(name, spec, tokenizer_path=tokenizer_path or str(resolve_model(model_name)))
    set_seed(seed)
    if name == "qlora":
        base = nf4_base(model_name)
        with known_notices():
            base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    else:
        base = load_base_model(model_name, dtype=torch.float32)
    if config is None:
        return base
    set_seed(seed)
    with known_notices():
        return get_peft_model(base, config)


def place(model, name: str = ""):
    """`model` on `get_device()` (the GPU if there is one). A 4-bit model was placed when it was loaded; on a CPU
    its layers are kept off bitsandbytes' inference-only kernel, which would drop their gradients (lesson 04)."""
    if getattr(model, "is_loaded_in_4bit", False) or name == "qlora":
        if not torch.cuda.is_available():
            keep_cpu_4bit_trainable(model)
        return model
    return model.to(get_device())


def trainable_parameters(model) -> int:
    """Parameters the optimizer updates (each tied tensor once)."""
    return count_parameters(model, trainable_only=True)


def lora_family_parameters(linear_shapes: Sequence[tuple[int, int]], r: int, dora: bool = False) -> int:
    """By hand: r·(d_in + d_out) per adapted linear layer; DoRA adds one magnitude per output row."""
    return sum(r * (d_in + d_out) + (d_out if dora else 0) for d_in, d_out in linear_shapes)


def glora_parameters(linear_shapes: Sequence[tuple[int, int]], r: int) -> int:
    """By hand: GLoRA's A and B are each rank r (Xd: d_out × r, Xu: r × d_in) in every adapted layer without a bias
    (its bias paths C, D and E exist only where the layer has a bias): 2·r·(d_in + d_out) per layer."""
    return sum(2 * r * (d_in + d_out) for d_in, d_out in linear_shapes)


def ia3_parameters(layers: int, kv_width: int, intermediate: int) -> int:
    """By hand: IA3 learns one scale per output of k_proj and v_proj, and per input of down_proj, in each layer."""
    return layers * (2 * kv_width + intermediate)


def virtual_token_parameters(num_virtual_tokens: int, hidden: int, layers: int = 0, kv_width: int = 0) -> int:
    """By hand: prompt tuning learns one embedding per virtual token; prefix tuning a key and a value per
    virtual token in every layer (layers > 0)."""
    if layers:
        return num_virtual_tokens * layers * 2 * kv_width
    return num_virtual_tokens * hidden


def training_batches(tokenizer, rows: Sequence[dict], batch_size: int, steps: int, seed: int,
                     max_length: int = 192) -> list[dict[str, torch.Tensor]]:
    """`steps` batches of `batch_size` rows, reply-only labels, in a seeded order (the same for every method)."""
    examples = []
    for row in rows:
        e = assistant_only_labels(tokenizer, row["messages"])
        examples.append({k: v[:max_length] for k, v in e.items()})
    order: list[int] = []
    g = torch.Generator().manual_seed(seed)
    while len(order) < steps * batch_size:
        order += torch.randperm(len(examples), generator=g).tolist()
    return [pad_batch([examples[i] for i in order[s * batch_size:(s + 1) * batch_size]], tokenizer.pad_token_id)
            for s in range(steps)]


def train_steps(model, batches: Sequence[dict], learning_rate: float, adalora: bool = False) -> dict:
    """AdamW at a constant rate over `batches`; peft's AdaLoRA allocator after every step. Losses and seconds."""
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=0.0)
    model.train()
    losses, seconds = [], []
    for step, batch in enumerate(batches):
        start = time.perf_counter()
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        if adalora:
            model.base_model.update_and_allocate(step)
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        seconds.append(time.perf_counter() - start)
    model.eval()
    return {"loss": losses, "seconds": seconds}
