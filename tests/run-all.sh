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
    [[ -f molecule/$scenario/molecule.yml ]] || continue # py39 runs its container with --rm
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

run_item() {
  # One lane item, its full output in a log; on failure the end of that log is shown. An item
  # is a molecule scenario, or py39: the host program's tests under Python 3.9 (a container of
  # its own, no bed); in a lane it overlaps the scenarios instead of adding to the serial stages.
  local item=$1 log=$ROOT/.bed/logs/molecule-$1.log started=$SECONDS what="molecule $1"
  local -a cmd=(molecule test -s "$item")
  if [[ $item == py39 ]]; then
    what="host program under Python 3.9" log=$ROOT/.bed/logs/py39-host-program.log
    cmd=(tests/bed/py39-host-program.sh)
  fi
  if "${cmd[@]}" >"$log" 2>&1; then
    echo "ok      $what ($((SECONDS - started)) s)"
  else
    echo "FAILED  $what ($((SECONDS - started)) s), log: $log"
    # The lines that say what failed, or else (a failure before any test) the log's last lines.
    local excerpt
    excerpt=$(grep -a -E 'fatal:|FAILED|Error|ERROR|^E  |failed because|Assertion' "$log" | tail -n 40)
    [[ -n $excerpt ]] || excerpt=$(tail -n 20 "$log")
    sed 's/^/    /' <<<"$excerpt"
    return 1
  fi
}

molecule_all() {
  # Lanes run in parallel (the containers mostly wait on podman exec); items within a lane run
  # one after the other. Lanes are separated by "|", balanced by measured time (s), from the
  # last full run on this 2-core machine: toggle 662 (then with two Debian 12 hosts; with the
  # AL2023 host in place of one, run alone: 1631 at load average 17-19, 1020 at 13 falling to
  # 4), upload 410, default 519, upgrade 346, rpm_upgrade 723, rpm_default 329, bad_input 126,
  # rpm_bad_input 126; py39 ~200, estimated: its pytest part took 70-230 s at load
  # average 3-12 (478 at 12-17) and, with its venv image cached, 11 s go to the rest (building the
  # venv image adds ~550 s at load 17; only a changed tests/bed/py39-requirements.txt does that).
  # Lane sums: 1134, ~1130, 1178. py39 ends its lane, when the other lanes are finishing.
  local lanes=${NCD_MOLECULE_LANES:-"toggle upgrade rpm_bad_input|upload default py39|rpm_upgrade rpm_default bad_input"} lane scenario rc=0
  local -a pids=()
  mkdir -p "$ROOT/.bed/logs"
  IFS='|' read -r -a lane_list <<<"$lanes"
  read -r -a started_scenarios <<<"${lanes//|/ }"
  for lane in "${lane_list[@]}"; do
    (
      lane_rc=0
      for scenario in $lane; do run_item "$scenario" || lane_rc=1; done
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
