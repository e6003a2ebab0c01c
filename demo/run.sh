#!/usr/bin/env bash
# make demo: the main job on the embedded default, a local fleet of three systemd
# containers (Debian 12 x2, Debian 13) and a local S3 (moto):
#   1. site.yml installs the tools from the bed's signed repository, layers our hook and
#      sets the core-dump environment with an S3 prefix;
#   2. a workload (the runtime stand-in) fails on one host as a non-root user;
#   3. its dump is uploaded asynchronously and listed from S3;
#   4. verify.yml writes the fleet report.
# Everything it started (servers, containers) is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.bed/demo
HOSTS=(ncd-demo-1 ncd-demo-2 ncd-demo-3)
BUCKET=ncd-demo-dumps
export ANSIBLE_COLLECTIONS_PATH=$ROOT/.bed/collections ANSIBLE_STDOUT_CALLBACK=default
export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ANSIBLE_DISPLAY_OK_HOSTS=false ANSIBLE_PYTHON_INTERPRETER=auto_silent
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
  podman rm -f "${HOSTS[@]}" >/dev/null 2>&1 || true
  python3 tests/bed/bedctl.py down
}
trap cleanup EXIT

say "Test bed: images, signed repositories, HTTP server and S3 (moto)"
python3 tests/bed/bedctl.py build
python3 tests/bed/bedctl.py up
# shellcheck disable=SC1091
source .bed/state/bed.env

say "Fleet: ${HOSTS[*]}"
images=("$NCD_IMAGE_BOOKWORM" "$NCD_IMAGE_BOOKWORM" "$NCD_IMAGE_TRIXIE")
for i in "${!HOSTS[@]}"; do
  podman rm -f "${HOSTS[$i]}" >/dev/null 2>&1 || true
  podman run -d --name "${HOSTS[$i]}" --hostname "${HOSTS[$i]}" --systemd=always --network host \
    "${images[$i]}" /lib/systemd/systemd >/dev/null
done
mkdir -p "$OUT"
{
  echo "all:"
  echo "  vars:"
  echo "    ansible_connection: containers.podman.podman"
  echo "    neuron_tools_repo_url: $NCD_BED_HTTP/neuron/apt"
  echo "    neuron_dump_s3_endpoint_url: $NCD_BED_S3"
  echo "    neuron_dump_s3_region: us-east-1"
  echo "    dump_env_s3_prefix: s3://$BUCKET/neuron/dt-%d-cid-%c"
  echo "    ncd_bed_bucket: $BUCKET"
  echo "    neuron_dump_config_extra: {uploader: {imds_enabled: false}}  # no metadata service here"
  echo "  hosts:"
  for host in "${HOSTS[@]}"; do echo "    $host:"; done
} > "$OUT/inventory.yml"
ansible-playbook -i "$OUT/inventory.yml" molecule/resources/prepare.yml >/dev/null
ansible-playbook -i "$OUT/inventory.yml" demo/bed-credentials.yml >/dev/null

say "site.yml on the fleet"
ansible-playbook -i "$OUT/inventory.yml" neuron_ops.core_dump.site

say "A workload fails on ${HOSTS[0]} (user trainer, 2 ranks x 2 cores)"
podman cp tests/bed/fake_nrt.py "${HOSTS[0]}:/usr/local/lib/fake_nrt.py"
podman exec "${HOSTS[0]}" sh -c 'id trainer >/dev/null 2>&1 || useradd -m trainer'
podman exec "${HOSTS[0]}" su -l trainer -c \
  'python3 /usr/local/lib/fake_nrt.py --ranks 2 --cores 0:0,0:1 --instance-id i-0de0000000000d3a1 --report -' \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); c=[c for k in r["ranks"] for c in k["calls"]];
print("hook calls: %d, longest wait seen by the runtime: %.3f s" % (len(c), max(x["blocked_seconds"] for x in c)));
print("local dump:", c[0]["local_output_dir"]); print("S3 prefix: ", c[0]["s3_output_prefix"])'

say "Waiting for the asynchronous upload"
for _ in $(seq 1 60); do
  if aws --endpoint-url "$NCD_BED_S3" s3 ls "s3://$BUCKET/neuron/" --recursive 2>/dev/null | grep -q -- '-manifest.json'; then break; fi
  sleep 2
done
aws --endpoint-url "$NCD_BED_S3" s3 ls "s3://$BUCKET/neuron/" --recursive
podman exec "${HOSTS[0]}" neuron-core-dump status

say "verify.yml: fleet report"
ansible-playbook -i "$OUT/inventory.yml" neuron_ops.core_dump.verify -e neuron_core_dump_expect=enabled \
  -e "neuron_core_dump_report_dir=$OUT"
cat "$OUT/fleet-report.md"
say "Done: reports in $OUT/fleet-report.{json,md}; containers and servers are being stopped."
