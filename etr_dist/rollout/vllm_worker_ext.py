"""Methods vLLM mixes into its worker (`worker_extension_cls`): load and read weights under HF names.

vLLM fuses q/k/v into `qkv_proj` and gate/up into `gate_up_proj` (the model's `packed_modules_mapping`),
and on CPU it repacks every linear weight into an opaque kernel layout and leaves `weight` empty. So:
- loading goes through the worker's in-place `reload_weights`, which re-runs the repacking; a bucket that
  carries only part of a module (q_proj without k_proj/v_proj) is completed with the module's current
  values first, since a half-loaded fused module would be repacked with uninitialised shards;
- reading a linear layer multiplies the identity through the layer's own kernel, `apply(I) = I @ W.T`:
  the exact weight the engine computes with, on every platform and in every layout.
Assumes tensor parallel size 1 and a model whose vLLM names equal the HF names apart from the fused
projections (Qwen2, Llama, Mistral and their kin).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from vllm.model_executor.layers.linear import LinearBase
from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding


class WeightUpdateExtension:
    """Mixed into vLLM's Worker, so `self.model_runner` and `self.reload_weights` are the worker's own."""

    def load_hf_weights(self, named_tensors: list[tuple[str, torch.Tensor]]) -> None:
        """Check all names and shapes first (a bad bucket changes nothing), fill partial modules, reload."""
        model = self.model_runner.get_model()
        incoming = dict(named_tensors)
        names_by_module: dict[str, list[str]] = {}
        for name in incoming:
            names_by_module.setdefault(_module_of(model, name), []).append(name)
        completion: dict[str, torch.Tensor] = {}
        for module_name, names in names_by_module.items():
            layout = _read_module(model, module_name, values=False)
            if unknown := sorted(set(names) - layout.keys()):
                raise KeyError(
                    f"vLLM module '{module_name}' has no parameters {unknown}; it has {sorted(layout)}"
                )
            for name in names:
                if tuple(incoming[name].shape) != tuple(layout[name].shape):
                    raise ValueError(
                        f"parameter '{name}' has shape {tuple(incoming[name].shape)}, "
                        f"the engine expects {tuple(layout[name].shape)}"
                    )
            if missing := layout.keys() - incoming.keys():
                current = _read_module(model, module_name, values=True)
                completion.update({name: current[name] for name in missing})
        aliases = _aliasing_modules(model, set(names_by_module))
        # A bucket leaves most modules untouched on purpose; vLLM would warn about each of them.
        with _quiet(logging.getLogger("vllm.model_executor.model_loader.reload")):
            self.reload_weights(weights_iterator=iter({**incoming, **completion}.items()))
        for module in aliases:  # e.g. a tied lm_head: its packed kernel copy still holds the old embedding
            module.quant_method.process_weights_after_loading(module)

    def read_hf_weights(self) -> dict[str, torch.Tensor]:
        model = self.model_runner.get_model()
        # named_parameters lists a tied weight once (embed_tokens, not lm_head), as HF's does.
        module_names = dict.fromkeys(name.rpartition(".")[0] for name, _ in model.named_parameters())
        weights: dict[str, torch.Tensor] = {}
        for module_name in module_names:
            weights.update(_read_module(model, module_name, values=True))
        return weights


def _aliasing_modules(model: nn.Module, module_names: set[str]) -> list[nn.Module]:
    """Modules outside module_names that hold one of their parameters: reload does not re-process them."""
    shared = {id(p) for name in module_names for p in model.get_submodule(name).parameters(recurse=False)}
    return [
        module
        for name, module in model.named_modules(remove_duplicate=False)
        if name not in module_names
        and hasattr(module, "quant_method")
        and any(id(p) in shared for p in module.parameters(recurse=False))
    ]


def _hf_shards(model: nn.Module, module_name: str) -> list[str]:
    """HF module names a vLLM module stands for: three for qkv_proj, two for gate_up_proj, else itself."""
    parent, _, leaf = module_name.rpartition(".")
    shards = getattr(model, "packed_modules_mapping", {}).get(leaf, [leaf])
    return [f"{parent}.{shard}" if parent else shard for shard in shards]


def _module_of(model: nn.Module, hf_name: str) -> str:
    """The vLLM module holding an HF parameter; KeyError naming the parameter when the model has none."""
    hf_module = hf_name.rpartition(".")[0]
    parent, _, leaf = hf_module.rpartition(".")
    for fused, shards in getattr(model, "packed_modules_mapping", {}).items():
        if leaf in shards:
            leaf = fused
    module_name = f"{parent}.{leaf}" if parent else leaf
    try:
        model.get_submodule(module_name)
    except AttributeError:
        raise KeyError(
            f"vLLM model has no module for parameter '{hf_name}' (looked for '{module_name}')"
        ) from None
    return module_name


def _read_module(model: nn.Module, module_name: str, values: bool) -> dict[str, torch.Tensor]:
    """One vLLM module's parameters under HF names and shapes; values=False: meta tensors (layout only)."""
    module = model.get_submodule(module_name)
    params = {name: p.detach() for name, p in module.named_parameters(recurse=False)}
    if isinstance(module, LinearBase):
        params["weight"] = _linear_weight(module, values)
    if isinstance(module, VocabParallelEmbedding):
        params["weight"] = params["weight"][: module.org_vocab_size]  # drop the padding rows
    shards = _hf_shards(model, module_name)
    sizes = module.output_partition_sizes if len(shards) > 1 else None
    weights = {}
    for param_name, value in params.items():
        parts = value.split(sizes, dim=0) if sizes else [value]
        for shard, part in zip(shards, parts, strict=True):
            weights[f"{shard}.{param_name}"] = part.clone() if values else part.to("meta")
    return weights


@torch.no_grad()
def _linear_weight(module: LinearBase, values: bool) -> torch.Tensor:
    """The [out, in] weight the layer's kernel multiplies by, whatever layout it keeps it in."""
    if not values:
        return torch.empty((module.output_size, module.input_size), dtype=module.params_dtype, device="meta")
    eye = torch.eye(module.input_size, dtype=module.params_dtype, device=module.weight.device)
    return module.quant_method.apply(module, eye).t().to(module.params_dtype)


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
