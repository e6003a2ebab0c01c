"""The host-program bed (tests/integration/host_program) for the adoption tests: same fixtures."""

import importlib.util
import os
import sys

_HOST_PROGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host_program")
sys.path.insert(0, _HOST_PROGRAM)
# shell_workload.py: the no-Python workload root file system the demo uses too
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bed"))
_spec = importlib.util.spec_from_file_location("host_program_conftest", os.path.join(_HOST_PROGRAM, "conftest.py"))
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

moto = _module.moto
lib_dir = _module.lib_dir
s3bed = _module.s3bed
