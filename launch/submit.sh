#!/usr/bin/env bash
# Submit `python -m etr_dist.train [overrides...]` as a Ray job; the repo root is uploaded as its working_dir.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: launch/submit.sh [--address URL] [--runtime-env FILE] [--no-wait] -- [overrides...]

Submits `python -m etr_dist.train [overrides...]` to a Ray cluster with `ray job submit`,
uploading this repository (minus the excludes in the runtime env) as the job's working dir.

  --address URL       Ray dashboard address (default: $RAY_ADDRESS, else http://127.0.0.1:8265)
  --runtime-env FILE  runtime env YAML (default: launch/runtime_env.yaml)
  --no-wait           return once the job is submitted instead of following its logs
  -h, --help          show this message

Ray token authentication: with a token at hand (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, the
cluster's) and RAY_AUTH_MODE unset, the token is sent (RAY_AUTH_MODE=token); an explicit RAY_AUTH_MODE is kept.

examples:
  launch/submit.sh -- algorithm=grpo trainer.total_steps=20
  launch/submit.sh --address http://head:8265 --no-wait -- rollout=vllm sync=nccl \
      trainer.output_dir=/shared/etr_runs
EOF
}

repo_root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"  # also through a symlink
address="${RAY_ADDRESS:-http://127.0.0.1:8265}"
runtime_env="$repo_root/launch/runtime_env.yaml"
submit_flags=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --address)
            [[ $# -ge 2 ]] || { echo "submit.sh: --address needs a URL" >&2; exit 2; }
            address="$2"
            shift 2
            ;;
        --runtime-env)
            [[ $# -ge 2 ]] || { echo "submit.sh: --runtime-env needs a file" >&2; exit 2; }
            if [[ "$2" == /* ]]; then runtime_env="$2"; else runtime_env="$PWD/$2"; fi
            shift 2
            ;;
        --no-wait)
            submit_flags+=(--no-wait)
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            break
            ;;
        *)
            echo "submit.sh: unknown option '$1' (put training overrides after --)" >&2
            usage >&2
            exit 2
            ;;
    esac
done

if ! command -v ray >/dev/null 2>&1; then
    echo "submit.sh: 'ray' is not on PATH; activate the environment that has ray[default] installed" \
        "(e.g. source .venv/bin/activate)" >&2
    exit 127
fi

if [[ ! -f "$runtime_env" ]]; then
    echo "submit.sh: runtime env file '$runtime_env' not found" >&2
    exit 2
fi

skip_output_note=false
for arg in "$@"; do
    case "$arg" in
        trainer.output_dir=* | trainer.run_dir=* | -h | --help) skip_output_note=true ;;
    esac
done
if [[ "$skip_output_note" == false ]]; then
    echo "submit.sh: note: no trainer.output_dir=...; outputs go to runs/ inside the job's copy of the" \
        "working dir on the head node (see docs/cluster.md)" >&2
fi

# Ray's CLI sends the cluster's token only in token mode: use it whenever a token is at hand (RAY_AUTH_TOKEN,
# RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), as `ray start` does; an explicit RAY_AUTH_MODE is kept.
if [[ -z "${RAY_AUTH_MODE:-}" ]] && [[ -n "${RAY_AUTH_TOKEN:-}" || -f "${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}" ]]; then
    export RAY_AUTH_MODE=token
fi

cd "$repo_root"
submit_flags+=(--address "$address" --runtime-env "$runtime_env" --working-dir .)
exec ray job submit "${submit_flags[@]}" -- python -m etr_dist.train "$@"
