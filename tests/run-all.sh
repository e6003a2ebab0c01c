#!/usr/bin/env bash
# Run every test stage (or the ones named: lint sanity artefact unit bedtests molecule). Only
# bedtests and molecule need the bed: for them it builds and starts the bed's servers first and
# stops every server and container it started, whatever happens. The other stages need the venv.
# Called by `make test` with the venv on PATH and CONTAINERS_CONF set.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
stages=("$@")
((${#stages[@]})) || stages=(lint sanity artefact unit bedtests molecule)
failed=()
passed=()

log() { printf '\n=== %s\n' "$*" >&2; }

bed_started=0
started_scenarios=()
cleanup() {
  ((bed_started)) || return 0
  python3 tests/bed/bedctl.py down
  # Only the platforms of the scenarios this run started: another checkout's run, the demo
  # or a benchmark may have containers of their own on this machine.
  local scenario names=()
  for scenario in ${started_scenarios[@]+"${started_scenarios[@]}"}; do
    mapfile -t -O ${#names[@]} names < <(sed -n 's/^ *- name: \(ncd-[A-Za-z0-9_.-]*\)$/\1/p' "molecule/$scenario/molecule.yml")
  done
  ((${#names[@]} == 0)) || podman rm -f -t 0 "${names[@]}" >/dev/null 2>&1
  return 0
}
trap cleanup EXIT

stage() {
  local name=$1
  shift
  log "$name"
  local started=$SECONDS
  if "$@"; then
    passed+=("$name ($((SECONDS - started)) s)")
  else
    failed+=("$name ($((SECONDS - started)) s)")
  fi
}

lint() {
  python3 tests/bed/bedctl.py link &&
    ruff check . && ruff format --check . &&
    ANSIBLE_COLLECTIONS_PATH=$ROOT/.bed/collections ansible-lint &&
    build_collection
}

build_collection() {
  # The artefact users install: it must build, and carry no tests or bed files.
  local out=$ROOT/.bed/build
  rm -rf "$out" && mkdir -p "$out"
  ansible-galaxy collection build --output-path "$out" >/dev/null &&
    ! tar -tzf "$out"/neuron_ops-core_dump-*.tar.gz | grep -E '^(tests|molecule|\.bed|bench|demo)/'
}

sanity() {
  # ansible-test wants the collection at ansible_collections/<ns>/<name>; copy what git
  # tracks (plus new, unignored files) so no bed artefact is scanned. The copy lives
  # outside this work tree: inside it, ansible-test would ask git and skip ignored paths.
  local dest=${TMPDIR:-/tmp}/ncd-sanity-$(id -u)/ansible_collections/neuron_ops/core_dump
  rm -rf "$dest" && mkdir -p "$dest"
  git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$dest"
  tests/bed/ansible-test-offline.sh
  (cd "$dest" && ansible-test sanity --venv --python 3.11 --color no)
}

artefact() {
  # What users install and run: the built collection with its declared dependencies under
  # ansible-core alone, the changelog, the fleet inventory against a local EC2 API (moto),
  # the execution environment definition and the policies shipped in docs/.
  python3 -m pytest -q -p no:cacheprovider tests/artefact
}

unit() {
  # Everything that needs only the venv (the host-program tests start their own moto).
  # Spread over the cores by file, so module-scoped fixtures are set up once (moto: once per worker).
  python3 -m pytest -q -p no:cacheprovider -n auto --dist loadfile -m "not bed" tests/unit tests/integration
}

bedtests() {
  # The tests marked bed (real podman on the bed's images); NCD_REQUIRE_BED=1 makes a
  # missing prerequisite fail them rather than skip.
  python3 -m pytest -q -p no:cacheprovider -m bed tests/unit tests/integration
}

run_scenario() {
  # One scenario, its full output in a log; on failure the end of that log is shown.
  local scenario=$1 log=$ROOT/.bed/logs/molecule-$1.log started=$SECONDS
  if molecule test -s "$scenario" >"$log" 2>&1; then
    echo "ok      molecule $scenario ($((SECONDS - started)) s)"
  else
    echo "FAILED  molecule $scenario ($((SECONDS - started)) s), log: $log"
    grep -a -E 'fatal:|FAILED|Error|^E  |failed because|Assertion' "$log" | tail -n 40 | sed 's/^/    /'
    return 1
  fi
}

molecule_all() {
  # Lanes run in parallel (the containers mostly wait on podman exec); scenarios within a
  # lane run one after the other. Lanes are separated by "|", balanced by measured time.
  # Measured in one clean-clone run (s): toggle 1000, upload 777, default 775, rpm_default 713,
  # upgrade 359, rpm_bad_input 267, bad_input 142; rpm_upgrade 915 measured alone on the same
  # 2-core machine at a load average of 8-11 from other work. Lane sums: 1626, 1694, 1628.
  local lanes=${NCD_MOLECULE_LANES:-"toggle upgrade rpm_bad_input|upload default bad_input|rpm_upgrade rpm_default"} lane scenario rc=0
  local -a pids=()
  mkdir -p "$ROOT/.bed/logs"
  IFS='|' read -r -a lane_list <<<"$lanes"
  read -r -a started_scenarios <<<"${lanes//|/ }"
  for lane in "${lane_list[@]}"; do
    (
      lane_rc=0
      for scenario in $lane; do run_scenario "$scenario" || lane_rc=1; done
      exit $lane_rc
    ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return $rc
}

needs_bed=0
for s in "${stages[@]}"; do [[ $s == molecule || $s == bedtests ]] && needs_bed=1; done
if ((needs_bed)); then
  log "bed: build and start"
  bed_started=1
  python3 tests/bed/bedctl.py build && python3 tests/bed/bedctl.py up || { echo "bed failed" >&2; exit 1; }
  # shellcheck disable=SC1091
  source .bed/state/bed.env
  export NCD_REQUIRE_BED=1
fi

for s in "${stages[@]}"; do
  case $s in
    lint) stage lint lint ;;
    sanity) stage sanity sanity ;;
    artefact) stage artefact artefact ;;
    unit) stage "unit and integration (no bed)" unit ;;
    bedtests) stage "tests on the bed's images" bedtests ;;
    molecule) stage molecule molecule_all ;;
    *) echo "unknown stage $s" >&2; exit 2 ;;
  esac
done

log "summary"
for p in "${passed[@]}"; do echo "  ok      $p"; done
for f in "${failed[@]}"; do echo "  FAILED  $f"; done
echo "stages: ${#passed[@]} passed, ${#failed[@]} failed"
((${#failed[@]} == 0))
