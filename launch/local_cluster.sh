#!/usr/bin/env bash
# A one-machine Ray head for trying the job flow of launch/submit.sh; `stop` ends only the head it started.
set -euo pipefail

temp_dir="${RAY_TEMP_DIR:-/tmp/etr_dist_ray}"
head_port="${RAY_HEAD_PORT:-6379}"
dashboard_port="${RAY_DASHBOARD_PORT:-8265}"
agent_port="${RAY_AGENT_PORT:-52365}"
num_cpus="${NUM_CPUS:-8}"
pid_file="$temp_dir/head.pid"
log_file="$temp_dir/head.log"
dashboard="http://127.0.0.1:$dashboard_port"
# Ray's token authentication is on: anyone who can reach an unauthenticated head can run code on it. The token is
# Ray's (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token, created on first start); the ray CLI and
# launch/submit.sh send it. Opting out (a machine no one else can reach, e.g. CI): RAY_AUTH_MODE=disabled.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"

usage() {
    cat <<'EOF'
usage: launch/local_cluster.sh start|stop|status

Runs a Ray head on this machine (dashboard on 127.0.0.1 only) for launch/submit.sh.
Settings (environment): NUM_CPUS (logical CPUs, default 8), RAY_HEAD_PORT (default 6379),
RAY_DASHBOARD_PORT (default 8265), RAY_AGENT_PORT (the dashboard agent's, which job submission needs; default
52365), RAY_TEMP_DIR (absolute, default /tmp/etr_dist_ray),
RAY_AUTH_MODE (default token: Ray's token authentication, the token in ~/.ray/auth_token, created if missing;
`disabled` turns it off, only for a machine no one else can reach).
With token auth, other ray commands need RAY_AUTH_MODE=token too (launch/submit.sh sets it).
`stop` ends the head this script started (its pid is in $RAY_TEMP_DIR/head.pid), no other Ray process.
EOF
}

head_pid() {
    [[ -f "$pid_file" ]] || return 1
    local pid
    pid="$(cat "$pid_file")"
    # The pid must still be our `ray start`, not an unrelated process that reused the number.
    [[ "$(ps -o args= -p "$pid" 2>/dev/null)" == *"ray start --head"*"--temp-dir=$temp_dir"* ]] || return 1
    echo "$pid"
}

require_ray() {
    command -v ray >/dev/null 2>&1 && return 0
    echo "local_cluster.sh: 'ray' is not on PATH; activate the environment that has ray[default] installed" \
        "(e.g. source .venv/bin/activate)" >&2
    exit 127
}

start() {
    local pid
    require_ray
    if pid="$(head_pid)"; then
        echo "Ray head already running (pid $pid), dashboard $dashboard"
        return 0
    fi
    [[ "$temp_dir" == /* ]] || { echo "local_cluster.sh: RAY_TEMP_DIR must be absolute" >&2; exit 2; }
    mkdir -p "$temp_dir"
    if [[ "$RAY_AUTH_MODE" == token ]]; then
        ray get-auth-token --generate >/dev/null  # Ray's token: created once if missing, kept otherwise
    fi
    # --block keeps `ray start` running as the owner of the head's processes: SIGTERM to it stops them all.
    nohup ray start --head --block --num-cpus="$num_cpus" --disable-usage-stats --node-ip-address=127.0.0.1 \
        --port="$head_port" --dashboard-host=127.0.0.1 --dashboard-port="$dashboard_port" \
        --dashboard-agent-listen-port="$agent_port" \
        --temp-dir="$temp_dir" >"$log_file" 2>&1 &
    echo $! >"$pid_file"
    for _ in $(seq 60); do
        if ! head_pid >/dev/null; then
            echo "local_cluster.sh: the Ray head exited during start; its log ($log_file) ends with:" >&2
            tail -n 20 "$log_file" >&2
            exit 1
        fi
        if ray job list --address "$dashboard" >/dev/null 2>&1; then
            echo "Ray head running (pid $(cat "$pid_file")), dashboard $dashboard, token auth: $RAY_AUTH_MODE"
            echo "submit with: launch/submit.sh --address $dashboard -- [overrides...]"
            return 0
        fi
        sleep 2
    done
    echo "local_cluster.sh: the dashboard did not answer at $dashboard within 120 s; log: $log_file" >&2
    exit 1
}

stop() {
    local pid
    if ! pid="$(head_pid)"; then
        echo "no Ray head started by this script is running"
        rm -f "$pid_file"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 60); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pid_file"
            echo "Ray head (pid $pid) stopped"
            return 0
        fi
        sleep 1
    done
    echo "local_cluster.sh: Ray head (pid $pid) still running after 60 s; log: $log_file" >&2
    exit 1
}

status() {
    local pid
    if ! pid="$(head_pid)"; then
        echo "no Ray head started by this script is running"
        return 1
    fi
    echo "Ray head running (pid $pid), dashboard $dashboard, GCS 127.0.0.1:$head_port"
    require_ray
    ray status --address "127.0.0.1:$head_port"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    -h | --help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
esac
