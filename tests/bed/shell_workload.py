"""A workload container's root file system with no Python: the bed's container workload.

dash (as /bin/sh), mkdir and their libraries, nothing else of an OS, plus two shell scripts:

* a fixture vendor ``/opt/aws/neuron/bin/neuron-dump``: the image's own hook, which writes its
  capture where ``--local-output-dir`` says (the real one also uploads when given
  ``--s3-output-prefix``; this one records the prefix and credentials it saw instead);
* a runtime stand-in ``/usr/local/bin/fake-nrt`` (written from docs/runtime-contract.md
  section 2 like fake_nrt.py, which needs Python): gate on "local dir or prefix non-empty and
  hook executable", expand ``%d %c %p``, exec the hook per failing core, then once with
  ``--runtime-generated``; run once per rank (``sh /usr/local/bin/fake-nrt <rank>``), two cores
  each. Like fake_nrt.py it is a test oracle and imports nothing from the product.

Used by tests/integration/containers and by demo/run.sh (inside a fleet host's Podman).
usage: python3 tests/bed/shell_workload.py ROOT [--date D] [--cluster C] [--instance-id I]
       python3 tests/bed/shell_workload.py --command     (prints the container's command: two ranks)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

DATE, CLUSTER, INSTANCE_ID = "20261202-101500", "0000000000000000", "i-0fa4e00000000000"
PROGRAMS = ("/bin/dash", "/bin/mkdir")

VENDOR = r"""#!/bin/sh
# Fixture vendor neuron-dump: one file per call, where --local-output-dir says.
out= pid= tid= lid= dev= core= rt= iid= s3=unset
while [ $# -gt 0 ]; do
  case "$1" in
    --local-output-dir) out=$2; shift ;; --pid) pid=$2; shift ;; --tid) tid=$2; shift ;;
    --log-id) lid=$2; shift ;; --device-id) dev=$2; shift ;; --core-id) core=$2; shift ;;
    --runtime-generated) rt=$2; shift ;; --instance-id) iid=$2; shift ;; --s3-output-prefix) s3=$2; shift ;;
  esac
  shift
done
mkdir -p "$out" || exit 0
if [ -n "$rt" ]; then
  while IFS= read -r line; do echo "$line"; done < "$rt" > "$out/$iid-nrt-pid-$pid.log"
else
  { echo "vendor capture nd$dev nc$core pid $pid"; echo "s3-output-prefix=[$s3]"
    echo "aws-key=[${AWS_ACCESS_KEY_ID-}]"; } > "$out/$iid-nd$dev-nc$core-pid-$pid-tid-$tid-lid-$lid"
fi
exit 0
"""

STAND_IN = r"""#!/bin/sh
# Runtime stand-in for rank $1 (docs/runtime-contract.md section 2), shell builtins only.
hook=/opt/aws/neuron/bin/neuron-dump
local_t=${NEURON_RT_LOCAL_CORE_DUMP_DIRECTORY-}; s3_t=${NEURON_RT_S3_CORE_DUMP_PREFIX-}
if [ -z "$local_t$s3_t" ] || [ ! -x "$hook" ]; then echo "rank $1: no dump"; exit 1; fi
lid=0
expand() {
  v=$1; out=
  while :; do
    case "$v" in *%*) ;; *) out=$out$v; break ;; esac
    out=$out${v%%\%*}; v=${v#*%}; ch=${v%"${v#?}"}; v=${v#?}
    case "$ch" in d) out=${out}@DATE@ ;; c) out=${out}@CLUSTER@ ;; p|t) out=$out$$ ;; l) out=$out$lid ;;
      i) out=${out}@IID@ ;; *) out=$out% ;; esac
  done
  echo "$out"
}
call() {
  dir=$(expand "$local_t"); set -- --pid $$ --tid $$ --log-id $lid --instance-id @IID@ --cluster-id @CLUSTER@ \
    --date-time @DATE@ --local-output-dir "$dir" "$@"
  if [ -n "$s3_t" ]; then set -- "$@" --s3-output-prefix "$(expand "$s3_t")"; fi
  "$hook" "$@"; lid=$((lid + 1))
}
for core in 0 1; do call --neff-name model --error-code 1006 --device-id "$1" --core-id $core; done
echo "nrt_execute() failed on rank $1 with 1006" > /tmp/nrt-$$.log
call --runtime-generated /tmp/nrt-$$.log
echo "rank $1: dumped"
exit 1
"""

# The two ranks of one failing job, as a container's command runs them.
TWO_RANKS = "sh /usr/local/bin/fake-nrt 0 & sh /usr/local/bin/fake-nrt 1 & wait"


def stand_in(date=DATE, cluster=CLUSTER, instance_id=INSTANCE_ID):
    """The stand-in with the job's %d, %c and %i fixed (the runtime reads them once per job)."""
    return STAND_IN.replace("@DATE@", date).replace("@CLUSTER@", cluster).replace("@IID@", instance_id)


def build(root, date=DATE, cluster=CLUSTER, instance_id=INSTANCE_ID):
    """Write the root file system at ``root`` (a new or empty directory); returns ``root``."""
    for directory in ("bin", "lib64", "proc", "sys", "dev", "etc", "tmp", "opt/aws/neuron/bin", "usr/local/bin"):
        os.makedirs(os.path.join(root, directory), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy2("/bin/dash", os.path.join(root, "bin", "sh"))
    shutil.copy2("/bin/mkdir", os.path.join(root, "bin", "mkdir"))
    for program in PROGRAMS:
        listing = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
        for word in listing.split():
            if word.startswith("/") and os.path.exists(word):
                target = os.path.join(root, word.lstrip("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(word, target)
    loader = os.path.join(root, "lib64", "ld-linux-x86-64.so.2")
    if not os.path.lexists(loader):
        os.symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", loader)
    for path, body in (
        ("opt/aws/neuron/bin/neuron-dump", VENDOR),
        ("usr/local/bin/fake-nrt", stand_in(date, cluster, instance_id)),
    ):
        with open(os.path.join(root, path), "w", encoding="utf-8") as handle:
            handle.write(body)
        os.chmod(os.path.join(root, path), 0o755)
    for _dirpath, _dirs, files in os.walk(root):
        if any(name.startswith("python") for name in files):
            raise RuntimeError("the workload root must hold no Python")
    return root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?")
    parser.add_argument("--command", action="store_true", help="print the command that runs both ranks")
    parser.add_argument("--date", default=DATE, help="the job's %%d (compact date-time)")
    parser.add_argument("--cluster", default=CLUSTER, help="the job's %%c (16 hex digits)")
    parser.add_argument("--instance-id", default=INSTANCE_ID, help="the job's %%i")
    args = parser.parse_args(argv)
    if args.command:
        print(TWO_RANKS)
        return 0
    if not args.root:
        parser.error("ROOT is required")
    build(args.root, args.date, args.cluster, args.instance_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
