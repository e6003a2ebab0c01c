#!/usr/bin/env bash
# make demo: the whole story on a local fleet of three systemd containers (Debian 12 x2,
# Debian 13) and a local S3 (moto), every step checked:
#   1. test bed and fleet up;
#   2. site.yml: tools from the bed's signed repository, our hook and uploader, the
#      core-dump environment with an S3 prefix, the CDI spec for containers;
#   3. two failures at once, each 2 ranks x 2 cores: a host process on fleet-1 (as a non-root
#      login user) and a workload container on fleet-2. Both dumps reach S3 (listing with sizes,
#      the SSE of each object, the manifest); the container's names its container;
#   4. verify.yml: every host enabled; the Jobs section names both jobs, one "from container";
#   5. "where is the dump of my failed job?": fetch_job.yml brings fleet-1's to the controller,
#      every file checked against its manifest;
#   6. disable.yml, a second failure on the host and in a new container that produce no dump
#      (none local, none in S3), verify.yml: every host disabled;
#   7. enable.yml, verify.yml: enabled again.
# Any step that does not do what it printed fails the demo (exit 1). Containers and servers
# are removed on success, failure and Ctrl-C. Ansible output goes to .bed/demo/logs/.
#
# What is real and what is not (also in README.md): Ansible, the collection, systemd, apt and the
# signed repositories, the uploader, S3's API (moto), Podman 4.3 + runc on fleet-2 reading the CDI
# spec that site.yml wrote there, its OCI hook and the adoption. Stand-ins: the Neuron runtime
# (tests/bed/fake_nrt.py on the host; a shell stand-in in the container, tests/bed/shell_workload.py),
# the vendor neuron-dump (fixture scripts) and AWS (moto, dummy credentials, no IMDS).
#
# Why Podman runs inside fleet-2 (a privileged container) rather than this machine's Podman against
# fleet-2's files: only then is everything the container path needs fleet-2's own — the CDI spec in
# its /etc/cdi, its createContainer hook (one directory per container, "attribution: enforced"),
# its area and its uploader — with nothing rewritten for the demo. It costs a cached image
# (tests/bed/build-image-podman-host.sh: Debian 12's podman and runc), --privileged for that host,
# and --cgroupns=private on `podman run` (this machine's cgroup v1; see that script).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.bed/demo
LOGS=$OUT/logs
# Not ncd-<scenario>-*: molecule scenarios own those names.
HOSTS=(ncd-demo-fleet-1 ncd-demo-fleet-2 ncd-demo-fleet-3)
BUCKET=ncd-demo-dumps
PREFIX=neuron/
FAILING=${HOSTS[0]}
CONTAINER_HOST=${HOSTS[1]}
WORKLOAD_ROOT=/srv/ncd-workload  # on $CONTAINER_HOST: the workload image's root file system (no Python)
DEVICE=neuron-ops.io/core-dump=default
WORKLOAD_COMMAND=$(python3 tests/bed/shell_workload.py --command)
QUIET=5 # the uploader adopts a container's dump once it has been quiet this long (default 120 s)
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.bed/collections ANSIBLE_STDOUT_CALLBACK=default
export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_DISPLAY_OK_HOSTS=false ANSIBLE_PYTHON_INTERPRETER=auto_silent
export ANSIBLE_FORKS=${#HOSTS[@]}
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1

started=$SECONDS
step_started=$SECONDS
step_name=''
timings=()
bold=$'\033[1m' green=$'\033[32m' red=$'\033[31m' reset=$'\033[0m'
[[ -t 1 ]] || bold='' green='' red='' reset=''

# Each step's seconds are kept for the summary at the end.
end_step() {
  [[ -n $step_name ]] && timings+=("$(printf '%4d s  %.60s' $((SECONDS - step_started)) "$step_name")")
  step_name=''
}
step() {
  end_step
  step_started=$SECONDS
  step_name=$*
  part_started=$SECONDS
  printf '\n%s== %s%s\n' "$bold" "$*" "$reset"
}
ok() {
  printf '   %sok%s  %s (%d s)\n' "$green" "$reset" "$*" $((SECONDS - part_started))
  part_started=$SECONDS
}
info() { printf '       %s\n' "$@"; }
die() {
  printf '   %sFAILED%s  %s\n' "$red" "$reset" "$*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # background steps of this script only (by pid), then its containers and bed servers
  local pids
  pids=$(jobs -p)
  [[ -z $pids ]] || kill $pids 2>/dev/null || true
  podman rm -f -t 0 "${HOSTS[@]}" >/dev/null 2>&1 || true
  python3 tests/bed/bedctl.py down >/dev/null 2>&1 || true
  end_step
  if ((rc == 0)); then
    printf '\n%sDemo passed%s in %d s. Reports and logs: %s\n' "$bold" "$reset" $((SECONDS - started)) "$OUT"
    printf '       %s\n' "${timings[@]}"
  else
    printf '\n%sDemo FAILED%s after %d s (exit %d). Logs: %s\n' "$red" "$reset" $((SECONDS - started)) "$rc" "$LOGS" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a playbook with its output in a log; show the recap; on failure, the end of the log.
playbook() {
  local name=$1
  shift
  local log=$LOGS/$name.log
  if ! ansible-playbook -i "$OUT/inventory.yml" "$@" >"$log" 2>&1; then
    tail -n 30 "$log" | sed 's/^/       | /' >&2
    die "ansible-playbook $* (log: $log)"
  fi
  sed -n '/^PLAY RECAP/,$p' "$log" | sed -e '/^$/d' -e 's/^/       /'
}

# verify.yml, then check the report says what we expect of every host.
verify() {
  local expect=$1 name=$2
  mkdir -p "$OUT/$name"
  playbook "$name" neuron_ops.core_dump.verify -e neuron_core_dump_expect="$expect" \
    -e "neuron_core_dump_report_dir=$OUT/$name"
  python3 - "$OUT/$name/fleet-report.json" "$expect" "${#HOSTS[@]}" <<'EOF' || die "verify.yml: the fleet is not $expect"
import json, sys
report, expect, hosts = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
counts = report["by_state"]
print("       fleet report: %d hosts, %s; drifting %d, to restart %d, pending uploads %d" % (
    report["host_count"], ", ".join("%s %d" % kv for kv in sorted(counts.items())),
    len(report["drifting_hosts"]), len(report["restart_required"]), len(report["pending_uploads"])))
sys.exit(0 if report["ok"] and counts.get(expect) == hosts == report["host_count"] else 1)
EOF
}

# A workload fails on $FAILING as user trainer: 2 ranks x 2 cores. Prints what the runtime saw;
# sets hook_calls.
fail_workload() {
  local cluster_id=$1 report=$OUT/failure-$1.json
  podman exec "$FAILING" su -l trainer -c \
    "python3 /usr/local/lib/fake_nrt.py --ranks 2 --cores 0:0,0:1 --cluster-id $cluster_id \
     --instance-id i-0de0000000000d3a1 --report -" >"$report" 2>"$LOGS/failure-$1.stderr" ||
    die "the stand-in workload crashed (see $LOGS/failure-$1.stderr)"
  python3 - "$report" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
calls = [c for rank in r["ranks"] for c in rank["calls"]]
print("       runtime gate: %s" % r["gate"].get("reason", r["gate"]))
if calls:
    print("       hook calls: %d, longest wait seen by the runtime: %.3f s" % (
        len(calls), max(c["blocked_seconds"] for c in calls)))
    print("       local dump: %s" % calls[0]["local_output_dir"])
    print("       S3 prefix:  %s" % calls[0]["s3_output_prefix"])
else:
    print("       hook calls: 0")
EOF
  hook_calls=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(len(k["calls"]) for k in r["ranks"]))' "$report")
}

# A workload container on $CONTAINER_HOST, started by that host's Podman with only the device
# request: both ranks of the shell stand-in, each running the image's own (fixture) neuron-dump
# per failing core. Its output goes to $OUT/container-$1.out.
run_container() {
  podman exec "$CONTAINER_HOST" podman run --rm --cgroupns=private --device "$DEVICE" \
    --rootfs "$WORKLOAD_ROOT" /bin/sh -c "$WORKLOAD_COMMAND" \
    >"$OUT/container-$1.out" 2>&1
}

local_dumps() {
  podman exec "$FAILING" sh -c 'find /var/lib/neuron-core-dump/dumps /tmp/neuron-core-dump -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l'
}

# Dump directories the containers of $CONTAINER_HOST wrote (shared or their own by-id slot).
container_dumps() {
  podman exec "$CONTAINER_HOST" sh -c 'find /var/lib/neuron-core-dump/containers/shared /var/lib/neuron-core-dump/containers/by-id -mindepth 1 -maxdepth 2 -name "dt-*" 2>/dev/null | wc -l'
}

# The uploader adopts a container's dump in three runs at least $QUIET s apart (watch, claim,
# copy). Its timer runs it every minute; the demo starts the same unit every $((QUIET + 1)) s.
adopt_and_wait() {
  local deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)); do
    podman exec "$CONTAINER_HOST" systemctl start neuron-core-dump-upload.service || {
      echo "neuron-core-dump-upload.service failed on $CONTAINER_HOST"
      return 1
    }
    if s3view wait --since "$OUT/s3-before-1.json" --origin container --timeout $((QUIET + 1)) >"$OUT/container-manifest"; then
      return 0
    fi
  done
  cat "$OUT/container-manifest"
  return 1
}

s3view() { python3 demo/s3view.py "$1" --bucket "$BUCKET" --prefix "$PREFIX" "${@:2}"; }

mkdir -p "$LOGS"
rm -f "$LOGS"/*.log
rm -rf "$OUT/jobs" "$OUT/workload-root"

step "1. Test bed and fleet: images, signed repositories, HTTP server, S3 (moto), ${HOSTS[*]}"
python3 tests/bed/bedctl.py build >"$LOGS/bed-build.log" 2>&1 || die "bed build (log: $LOGS/bed-build.log)"
bookworm=$(python3 -c 'import json; print(json.load(open(".bed/state/images.json"))["bookworm"])')
trixie=$(python3 -c 'import json; print(json.load(open(".bed/state/images.json"))["trixie"])')
podman_host=$(tests/bed/build-image-podman-host.sh "$bookworm" 2>>"$LOGS/bed-build.log") ||
  die "the Podman host image (log: $LOGS/bed-build.log)"
ok "images: $bookworm, $trixie, $podman_host"
# The servers and the three hosts start at once; the hosts boot while the servers come up.
python3 tests/bed/bedctl.py up >"$LOGS/bed-up.log" 2>&1 &
bed_up=$!
images=("$bookworm" "$podman_host" "$trixie")
for i in "${!HOSTS[@]}"; do
  flags=()
  [[ ${HOSTS[$i]} == "$CONTAINER_HOST" ]] && flags=(--privileged) # Podman runs inside it
  podman rm -f -t 0 "${HOSTS[$i]}" >/dev/null 2>&1 || true
  podman run -d --name "${HOSTS[$i]}" --hostname "${HOSTS[$i]}" --systemd=always --network host \
    "${flags[@]}" "${images[$i]}" /lib/systemd/systemd >/dev/null || die "podman run ${HOSTS[$i]}"
done
wait "$bed_up" || die "bed up (log: $LOGS/bed-up.log)"
# shellcheck disable=SC1091
source .bed/state/bed.env
{
  echo "all:"
  echo "  vars:"
  echo "    ansible_connection: containers.podman.podman"
  echo "    ansible_python_interpreter: /usr/bin/python3  # known: no discovery round trip per playbook"
  echo "    neuron_tools_repo_url: $NCD_BED_HTTP/neuron/apt"
  echo "    neuron_dump_s3_endpoint_url: $NCD_BED_S3"
  echo "    neuron_dump_s3_region: us-east-1"
  echo "    neuron_dump_s3_allowed_buckets: [$BUCKET]"
  echo "    dump_env_s3_prefix: s3://$BUCKET/${PREFIX}dt-%d-cid-%c"
  echo "    dump_env_containers: true  # the CDI spec $DEVICE"
  echo "    neuron_dump_containers_quiet_seconds: $QUIET"
  echo "    ncd_bed_bucket: $BUCKET"
  echo "    neuron_dump_config_extra: {uploader: {imds_enabled: false}}  # no metadata service here"
  echo "  hosts:"
  for host in "${HOSTS[@]}"; do echo "    $host:"; done
} >"$OUT/inventory.yml"
# The workload image: this job's %d and %c are fixed when it is built, as the runtime reads them once.
python3 tests/bed/shell_workload.py "$OUT/workload-root" --date "$(date -u +%Y%m%d-%H%M%S)" \
  --cluster "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" --instance-id i-0de0000000000d3a2
# The workloads' files go in while the prepare playbook runs (neither touches the other's files).
{
  podman cp tests/bed/fake_nrt.py "$FAILING:/usr/local/lib/fake_nrt.py" &&
    podman exec "$FAILING" sh -c 'id trainer >/dev/null 2>&1 || useradd -m trainer' &&
    podman cp "$OUT/workload-root" "$CONTAINER_HOST:$WORKLOAD_ROOT" &&
    podman exec "$CONTAINER_HOST" podman --version
} >"$LOGS/workloads.log" 2>&1 &
workloads=$!
playbook prepare molecule/resources/prepare.yml demo/bed-credentials.yml >/dev/null
wait "$workloads" || die "copying the workloads into the fleet (log: $LOGS/workloads.log)"
info "$CONTAINER_HOST: $(tail -n 1 "$LOGS/workloads.log")"
ok "repository $NCD_BED_HTTP, S3 $NCD_BED_S3; ${#HOSTS[@]} hosts booted, OS mirror pointed at the bed, bucket s3://$BUCKET created"

step "2. site.yml on the fleet (S3 prefix s3://$BUCKET/${PREFIX}dt-%d-cid-%c, CDI spec $DEVICE)"
playbook site neuron_ops.core_dump.site
podman exec "$CONTAINER_HOST" test -s /etc/cdi/neuron-ops.io-core-dump.json ||
  die "site.yml wrote no CDI spec on $CONTAINER_HOST"
ok "tools, hook, uploader and settings in place; CDI spec in $CONTAINER_HOST:/etc/cdi"

step "3. Two workloads fail (2 ranks x 2 cores each): a process on $FAILING (user trainer), a container on $CONTAINER_HOST"
s3view snapshot --out "$OUT/s3-before-1.json"
run_container 1 &
container=$!
fail_workload 1
((hook_calls >= 4)) || die "expected at least 4 hook calls (2 ranks x 2 cores), the runtime made $hook_calls"
ok "$FAILING: the runtime ran the hook $hook_calls times and went on"
wait "$container" || { sed 's/^/       | /' "$OUT/container-1.out" >&2; die "the workload container failed to run"; }
grep -c 'dumped' "$OUT/container-1.out" | grep -qx 2 || die "the container's ranks did not both dump: $(cat "$OUT/container-1.out")"
info "podman run --device $DEVICE --rootfs $WORKLOAD_ROOT (no Python): $(paste -sd, "$OUT/container-1.out")"
ok "$CONTAINER_HOST: the container's own neuron-dump wrote its capture into the host's area"
adopt_and_wait >"$OUT/adopt.out" 2>&1 &
adopting=$!
info "waiting for the host's upload (the manifest is written last)..."
manifest=$(s3view wait --since "$OUT/s3-before-1.json" --origin host --timeout 120) || die "$manifest"
info "manifest: s3://$BUCKET/$manifest"
if ! s3view show --since "$OUT/s3-before-1.json" --origin host | sed 's/^/       /'; then
  die "the dump in S3 is incomplete, not encrypted or not what the manifest lists"
fi
podman exec "$FAILING" neuron-core-dump status | sed 's/^/       /'
ok "$FAILING: dump uploaded, every object encrypted, the manifest lists exactly the other objects"
info "$CONTAINER_HOST adopts the container's dump once quiet for $QUIET s (3 uploader runs)..."
wait "$adopting" || die "the container's dump did not reach S3: $(cat "$OUT/adopt.out")"
info "manifest: s3://$BUCKET/$(cat "$OUT/container-manifest")"
if ! s3view show --since "$OUT/s3-before-1.json" --origin container | sed 's/^/       /'; then
  die "the container's dump in S3 is incomplete, not encrypted or does not name its container"
fi
ok "$CONTAINER_HOST: the container's dump uploaded by the host's uploader, with the host's credentials, naming its container"

step "4. verify.yml: the fleet is enabled"
verify enabled verify-enabled
python3 - "$OUT/verify-enabled/fleet-report.json" "$CONTAINER_HOST" <<'EOF' || die "the fleet report's Jobs section does not show the container's job"
import json, sys
jobs, host = json.load(open(sys.argv[1]))["jobs"], sys.argv[2]
row = next((j for j in jobs if any(c["host"] == host for c in j["containers"]) and j["upload_complete"]), None)
if row is None:
    sys.exit(1)
c = next(c for c in row["containers"] if c["host"] == host)
print("       Jobs row: %s from container %s on %s (%s, attribution %s), %d files, uploaded" % (
    row["job"], (c["container_id"] or "?")[:12], host, c["runtime"], c["attribution"], row["files"]))
sys.exit(0 if c["attribution"] == "enforced" else 1)
EOF
ok "every host enabled, no drift; the container's job is in the report with its container"

step "5. Where is the dump of my failed job? The fleet report's Jobs section, then fetch_job.yml"
job=$(python3 - "$OUT/verify-enabled/fleet-report.json" "$FAILING" <<'EOF'
import json, sys
jobs, host = json.load(open(sys.argv[1]))["jobs"], sys.argv[2]
row = next((j for j in jobs if host in j["hosts"] and j["upload_complete"]), None)
if row is None:
    sys.exit("no complete job of %s in the Jobs section" % host)
errors = ", ".join("%s (%s)" % (e["name"], e["code"]) for e in row["errors"])
print("       Jobs row: %s on %s, %s, %d files, uploaded from %d of %d host(s)" % (
    row["job"], ", ".join(row["hosts"]), errors, row["files"], row["uploaded_hosts"], row["host_count"]),
    file=sys.stderr)
print(row["job"])
EOF
) || die "verify.yml's fleet report does not name the failed job"
playbook fetch-job neuron_ops.core_dump.fetch_job -e "neuron_core_dump_job=$job" \
  -e "neuron_core_dump_fleet_report=$OUT/verify-enabled/fleet-report.json" \
  -e "neuron_core_dump_fetch_dest=$OUT/jobs" -e "neuron_core_dump_s3_endpoint_url=$NCD_BED_S3" \
  -e neuron_core_dump_s3_region=us-east-1 -e neuron_core_dump_s3_addressing_style=path >/dev/null
fetched=$(find "$OUT/jobs/$job" -type f | wc -l)
((fetched > 0)) || die "fetch_job.yml brought no file of $job"
info "$OUT/jobs/$job: $fetched files, each checked (size, sha256) against its host's manifest"
ok "the failed job's dump is on the controller, verified"

step "6. disable.yml, then a second failure on the host and in a new container that must produce no dump"
playbook disable neuron_ops.core_dump.disable
ok "settings off on every host"
before=$(local_dumps)
containers_before=$(container_dumps)
s3view snapshot --out "$OUT/s3-before-2.json"
run_container 2 &
container=$!
fail_workload 2
((hook_calls == 0)) || die "the runtime still ran the hook $hook_calls times"
after=$(local_dumps)
((after == before)) || die "a new local dump appeared ($before -> $after dump directories)"
wait "$container" || { sed 's/^/       | /' "$OUT/container-2.out" >&2; die "a container requesting $DEVICE no longer starts"; }
grep -c 'no dump' "$OUT/container-2.out" | grep -qx 2 || die "the container's ranks still dumped: $(cat "$OUT/container-2.out")"
containers_after=$(container_dumps)
((containers_after == containers_before)) ||
  die "a new container dump appeared on $CONTAINER_HOST ($containers_before -> $containers_after)"
info "the container still starts with --device $DEVICE: $(paste -sd, "$OUT/container-2.out")"
# verify.yml runs while S3 is watched for 10 s: neither changes what the other sees.
s3view unchanged --since "$OUT/s3-before-2.json" --settle 10 >"$OUT/unchanged-2" 2>&1 &
unchanged=$!
verify disabled verify-disabled
wait "$unchanged" || die "a new object appeared in S3: $(cat "$OUT/unchanged-2")"
ok "no hook call, no local dump, no container dump, nothing new in S3 after 10 s; verify.yml reports every host disabled"

step "7. enable.yml: back on"
playbook enable neuron_ops.core_dump.enable
verify enabled verify-reenabled
ok "every host enabled again"
sed "s/^/       /" "$OUT/verify-reenabled/fleet-report.md"
