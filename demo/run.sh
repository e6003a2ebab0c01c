#!/usr/bin/env bash
# make demo: the whole story on a local fleet of three systemd containers (Debian 12 x2,
# Debian 13) and a local S3 (moto), every step checked:
#   1. test bed and fleet up;
#   2. site.yml: tools from the bed's signed repository, our hook and uploader, the
#      core-dump environment with an S3 prefix;
#   3. a workload fails on one host (2 ranks x 2 cores, as a non-root login user) and its
#      dump reaches S3: listing with sizes, the SSE of each object, the manifest;
#   4. verify.yml: every host enabled;
#   5. "where is the dump of my failed job?": the fleet report's Jobs section names it and
#      fetch_job.yml brings it to the controller, every file checked against its manifest;
#   6. disable.yml, a second failure that produces no dump (none local, none in S3),
#      verify.yml: every host disabled;
#   7. enable.yml, verify.yml: enabled again.
# Any step that does not do what it printed fails the demo (exit 1). Containers and servers
# are removed on success, failure and Ctrl-C. Ansible output goes to .bed/demo/logs/.
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
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.bed/collections ANSIBLE_STDOUT_CALLBACK=default
export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_DISPLAY_OK_HOSTS=false ANSIBLE_PYTHON_INTERPRETER=auto_silent
export ANSIBLE_FORKS=${#HOSTS[@]}
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1

started=$SECONDS
step_started=$SECONDS
bold=$'\033[1m' green=$'\033[32m' red=$'\033[31m' reset=$'\033[0m'
[[ -t 1 ]] || bold='' green='' red='' reset=''

step() {
  step_started=$SECONDS
  printf '\n%s== %s%s\n' "$bold" "$*" "$reset"
}
ok() {
  printf '   %sok%s  %s (%d s)\n' "$green" "$reset" "$*" $((SECONDS - step_started))
  step_started=$SECONDS
}
info() { printf '       %s\n' "$@"; }
die() {
  printf '   %sFAILED%s  %s\n' "$red" "$reset" "$*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  podman rm -f -t 0 "${HOSTS[@]}" >/dev/null 2>&1 || true
  python3 tests/bed/bedctl.py down >/dev/null 2>&1 || true
  if ((rc == 0)); then
    printf '\n%sDemo passed%s in %d s. Reports and logs: %s\n' "$bold" "$reset" $((SECONDS - started)) "$OUT"
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

# A workload fails on $FAILING as user trainer: 2 ranks x 2 cores. Prints what the runtime saw.
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

local_dumps() {
  podman exec "$FAILING" sh -c 'find /var/lib/neuron-core-dump/dumps /tmp/neuron-core-dump -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l'
}

s3view() { python3 demo/s3view.py "$1" --bucket "$BUCKET" --prefix "$PREFIX" "${@:2}"; }

mkdir -p "$LOGS"
rm -f "$LOGS"/*.log
rm -rf "$OUT/jobs"

step "1. Test bed: images, signed repositories, HTTP server and S3 (moto)"
python3 tests/bed/bedctl.py build >"$LOGS/bed-build.log" 2>&1 || die "bed build (log: $LOGS/bed-build.log)"
python3 tests/bed/bedctl.py up >"$LOGS/bed-up.log" 2>&1 || die "bed up (log: $LOGS/bed-up.log)"
# shellcheck disable=SC1091
source .bed/state/bed.env
ok "repository $NCD_BED_HTTP, S3 $NCD_BED_S3"

step "1. Fleet: ${HOSTS[*]}"
images=("$NCD_IMAGE_BOOKWORM" "$NCD_IMAGE_BOOKWORM" "$NCD_IMAGE_TRIXIE")
for i in "${!HOSTS[@]}"; do
  podman rm -f -t 0 "${HOSTS[$i]}" >/dev/null 2>&1 || true
  podman run -d --name "${HOSTS[$i]}" --hostname "${HOSTS[$i]}" --systemd=always --network host \
    "${images[$i]}" /lib/systemd/systemd >/dev/null || die "podman run ${HOSTS[$i]}"
done
{
  echo "all:"
  echo "  vars:"
  echo "    ansible_connection: containers.podman.podman"
  echo "    neuron_tools_repo_url: $NCD_BED_HTTP/neuron/apt"
  echo "    neuron_dump_s3_endpoint_url: $NCD_BED_S3"
  echo "    neuron_dump_s3_region: us-east-1"
  echo "    neuron_dump_s3_allowed_buckets: [$BUCKET]"
  echo "    dump_env_s3_prefix: s3://$BUCKET/${PREFIX}dt-%d-cid-%c"
  echo "    ncd_bed_bucket: $BUCKET"
  echo "    neuron_dump_config_extra: {uploader: {imds_enabled: false}}  # no metadata service here"
  echo "  hosts:"
  for host in "${HOSTS[@]}"; do echo "    $host:"; done
} >"$OUT/inventory.yml"
playbook prepare molecule/resources/prepare.yml >/dev/null
playbook bed-credentials demo/bed-credentials.yml >/dev/null
podman cp tests/bed/fake_nrt.py "$FAILING:/usr/local/lib/fake_nrt.py"
podman exec "$FAILING" sh -c 'id trainer >/dev/null 2>&1 || useradd -m trainer'
ok "${#HOSTS[@]} hosts booted, OS mirror pointed at the bed, bucket s3://$BUCKET created"

step "2. site.yml on the fleet (S3 prefix s3://$BUCKET/${PREFIX}dt-%d-cid-%c)"
playbook site neuron_ops.core_dump.site
ok "tools, hook, uploader and settings in place"

step "3. A workload fails on $FAILING (user trainer, 2 ranks x 2 cores)"
s3view snapshot --out "$OUT/s3-before-1.json"
fail_workload 1
((hook_calls >= 4)) || die "expected at least 4 hook calls (2 ranks x 2 cores), the runtime made $hook_calls"
ok "the runtime ran the hook $hook_calls times and went on"
info "waiting for the asynchronous upload (the manifest is written last)..."
manifest=$(s3view wait --since "$OUT/s3-before-1.json" --timeout 120) || die "$manifest"
info "manifest: s3://$BUCKET/$manifest"
if ! s3view show --since "$OUT/s3-before-1.json" | sed 's/^/       /'; then
  die "the dump in S3 is incomplete, not encrypted or not what the manifest lists"
fi
podman exec "$FAILING" neuron-core-dump status | sed 's/^/       /'
ok "dump uploaded, every object encrypted, the manifest lists exactly the other objects"

step "4. verify.yml: the fleet is enabled"
verify enabled verify-enabled
ok "every host enabled, no drift"

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

step "6. disable.yml, then a second failure that must produce no dump"
playbook disable neuron_ops.core_dump.disable
ok "settings off on every host"
before=$(local_dumps)
s3view snapshot --out "$OUT/s3-before-2.json"
fail_workload 2
((hook_calls == 0)) || die "the runtime still ran the hook $hook_calls times"
after=$(local_dumps)
((after == before)) || die "a new local dump appeared ($before -> $after dump directories)"
s3view unchanged --since "$OUT/s3-before-2.json" --settle 10 || die "a new object appeared in S3"
ok "no hook call, no local dump, nothing new in S3 after 10 s"
verify disabled verify-disabled
ok "verify.yml reports every host disabled"

step "7. enable.yml: back on"
playbook enable neuron_ops.core_dump.enable
verify enabled verify-reenabled
ok "every host enabled again"
sed "s/^/       /" "$OUT/verify-reenabled/fleet-report.md"
