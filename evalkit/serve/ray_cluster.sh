#!/usr/bin/env bash
# A Ray cluster over the nodes of one Slurm allocation, then a command (vLLM) that uses it; Ray stops when it ends.
#
#   ray_cluster.sh <command...>
#
# Runs on the allocation's first node, inside the job's single evalkit task: starts the Ray head here, starts one
# Ray worker on each other node (`srun` by default), waits until the cluster shows all EVALKIT_RAY_NODES nodes and
# EVALKIT_RAY_GPUS GPUs, and only then starts <command> with RAY_ADDRESS set. If the workers do not join in time
# (or their launcher exits first) it stops with an error naming the workers' log, and <command> never starts.
# Leaving any way (command exits, SIGTERM/SIGINT from evalkit stopping the server) stops the command, the workers
# and the head.
#
# Settings (environment; evalkit.serve.ray_cluster renders them):
#   EVALKIT_RAY_NODES        nodes the cluster must have, head included (required)
#   EVALKIT_RAY_GPUS         GPUs it must have in total (0: not checked)
#   EVALKIT_RAY_PYTHON       interpreter with `ray` (vLLM's)
#   EVALKIT_RAY_BIN          the `ray` executable (default: the console script beside EVALKIT_RAY_PYTHON)
#   EVALKIT_RAY_PORT         GCS port of the head (default 6379)
#   EVALKIT_RAY_HEAD_IP      address workers reach the head at (default: Ray's choice for this node)
#   EVALKIT_RAY_TIMEOUT_S    how long to wait for the workers (default 600)
#   EVALKIT_RAY_WORKER_LOG   where the workers' output goes (default ./ray-workers.log)
#   EVALKIT_RAY_HEAD_ARGS    extra `ray start --head` arguments (word-split), e.g. --temp-dir=/x --num-cpus=1
#   EVALKIT_RAY_WORKER_ARGS  extra `ray start` arguments for each worker (word-split)
#   EVALKIT_RAY_LAUNCH_WORKERS  shell command that starts the workers and stays in the foreground while they run;
#                            default: srun, one task on every other node of the allocation. Tests inject a local
#                            `ray start` here. It sees EVALKIT_RAY_HEAD (ip:port) and RAY (the ray executable).
set -uo pipefail

die() {
    echo "ray_cluster.sh: $*" >&2
    exit 3
}

[ $# -gt 0 ] || die "usage: ray_cluster.sh <command...> (the command that uses the cluster, e.g. vLLM's server)"
NODES=${EVALKIT_RAY_NODES:?EVALKIT_RAY_NODES (nodes of the Ray cluster) is not set}
GPUS=${EVALKIT_RAY_GPUS:-0}
PY=${EVALKIT_RAY_PYTHON:-python3}
RAY=${EVALKIT_RAY_BIN:-$(dirname "$PY")/ray}
PORT=${EVALKIT_RAY_PORT:-6379}
# Ray's own choice of this node's address (what the head would advertise), not `hostname -I`'s first entry,
# which on compute nodes can be a bridge or a management interface the other nodes cannot reach.
HEAD_IP=${EVALKIT_RAY_HEAD_IP:-$("$PY" -c 'import ray.util; print(ray.util.get_node_ip_address())' 2>/dev/null)}
TIMEOUT_S=${EVALKIT_RAY_TIMEOUT_S:-600}
WORKER_LOG=${EVALKIT_RAY_WORKER_LOG:-$PWD/ray-workers.log}
[ -x "$RAY" ] || die "no ray executable at $RAY (install ray in the environment of $PY: pip install 'ray[default]')"
[ -n "$HEAD_IP" ] || die "cannot tell this node's address; set EVALKIT_RAY_HEAD_IP"
export RAY EVALKIT_RAY_HEAD="$HEAD_IP:$PORT"
# Slurm's name for this node (not always `hostname`): the workers go to every node but this one.
HEAD_NODE=${SLURMD_NODENAME:-$(hostname -s)}
# srun flags as in Slurm 22.05: --overlap lets this step share the node with the job's evalkit step, --exclude keeps
# the head's node out, one task per remaining node; --block keeps each worker (and so this step) in the foreground.
DEFAULT_LAUNCH='srun --nodes=$((EVALKIT_RAY_NODES - 1)) --ntasks=$((EVALKIT_RAY_NODES - 1)) --ntasks-per-node=1'
DEFAULT_LAUNCH+=' --exclude="$HEAD_NODE" --overlap --kill-on-bad-exit=1'
DEFAULT_LAUNCH+=' "$RAY" start --address="$EVALKIT_RAY_HEAD" --block ${EVALKIT_RAY_WORKER_ARGS:-}'
LAUNCH=${EVALKIT_RAY_LAUNCH_WORKERS:-$DEFAULT_LAUNCH}
export HEAD_NODE EVALKIT_RAY_NODES="$NODES"

launcher_pid=""
command_pid=""
cleanup() {
    trap - EXIT INT TERM
    [ -n "$command_pid" ] && kill -TERM "$command_pid" 2>/dev/null && wait "$command_pid" 2>/dev/null
    # `ray stop` ends this node's Ray processes (they daemonize, so no signal to us reaches them).
    echo "ray_cluster.sh: stopping the Ray cluster (${SECONDS} s since start)" >&2
    "$RAY" stop --force >/dev/null 2>&1
    if [ -n "$launcher_pid" ]; then
        # The launcher's process group: srun forwards SIGTERM to the worker tasks. A worker drains for up to 30 s
        # before it exits; with the head gone there is nothing to drain, so it gets 5 s, then SIGKILL.
        kill -TERM -- "-$launcher_pid" 2>/dev/null
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$launcher_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$launcher_pid" 2>/dev/null
        wait "$launcher_pid" 2>/dev/null
    fi
    echo "ray_cluster.sh: Ray cluster stopped (${SECONDS} s since start)" >&2
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

echo "ray_cluster.sh: head on $HEAD_NODE ($EVALKIT_RAY_HEAD), waiting for $NODES node(s), $GPUS GPU(s)" >&2
# shellcheck disable=SC2086  # the extra args are meant to be word-split
"$RAY" start --head --node-ip-address="$HEAD_IP" --port="$PORT" --include-dashboard=false --disable-usage-stats \
    ${EVALKIT_RAY_HEAD_ARGS:-} >&2 || die "ray start --head failed on $HEAD_NODE (output above)"
echo "ray_cluster.sh: head up after ${SECONDS} s; starting the workers, their log: $WORKER_LOG" >&2

# Own process group, so cleanup can signal everything the launcher started.
setsid bash -c "$LAUNCH" >>"$WORKER_LOG" 2>&1 &
launcher_pid=$!

# Poll the head's view of the cluster with one driver; fail fast when the launcher has exited.
"$PY" - "$EVALKIT_RAY_HEAD" "$NODES" "$GPUS" "$TIMEOUT_S" "$launcher_pid" "$WORKER_LOG" <<'EOF' >&2 || exit 3
import os, sys, time
import ray

address, nodes, gpus, timeout_s, launcher_pid, worker_log = sys.argv[1:]
nodes, gpus, timeout_s = int(nodes), float(gpus), float(timeout_s)

def launcher_alive() -> bool:
    try:
        with open(f"/proc/{launcher_pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

ray.init(address=address, logging_level="ERROR", log_to_driver=False)
t0 = time.monotonic()
while True:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    have_gpus = sum(n.get("Resources", {}).get("GPU", 0) for n in alive)
    state = f"{len(alive)} of {nodes} node(s), {have_gpus:g} of {gpus:g} GPU(s)"
    if len(alive) >= nodes and have_gpus >= gpus:
        print(f"ray_cluster.sh: cluster ready after {time.monotonic() - t0:.1f} s: {state}", flush=True)
        sys.exit(0)
    why = ""
    if not launcher_alive():
        why = "the worker launcher exited"
    elif time.monotonic() - t0 > timeout_s:
        why = f"not complete after {timeout_s:g} s"
    if why:
        print(
            f"ray_cluster.sh: Ray cluster incomplete, {why}: {state}\n"
            f"  workers' log: {worker_log}\n"
            "  next: read that log (srun refused the step, a node cannot reach the head's port, ray missing on a "
            "node); raise EVALKIT_RAY_TIMEOUT_S if the nodes were only slow to start",
            flush=True,
        )
        sys.exit(1)
    time.sleep(1.0)
EOF

echo "ray_cluster.sh: starting: $*" >&2
RAY_ADDRESS=$EVALKIT_RAY_HEAD "$@" &
command_pid=$!
wait "$command_pid"
status=$?
command_pid=""
exit "$status"
