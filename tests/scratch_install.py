"""Install the host program the way the neuron_dump role does, below any directory.

The role fills the version (galaxy.yml) and the host paths (its vars/main.yml) into the entry
scripts and the package's ``layout.py`` (templates/). This module renders the same templates
with the same values, or with a scratch tree's paths: the one supported way for tests and
benchmarks to relocate the program (never rewrite an installed file). Needs jinja2 and PyYAML.
"""

import atexit
import os
import re
import shutil
import tempfile

import jinja2
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLE_DIR = os.path.join(REPO_ROOT, "roles", "neuron_dump")
PACKAGE_DIR = os.path.join(ROLE_DIR, "files", "neuron_core_dump")
# What the package shares with the modules: module_utils owns it, the role installs it too.
SHARED = [os.path.join(REPO_ROOT, "plugins", "module_utils", name) for name in ("patterns.py", "bucket_name.py")]
_REF = re.compile(r"\{\{ (__neuron_dump_\w+) \}\}")


def role_values(**paths):
    """The role's layout variables (names without ``__neuron_dump_``), ``paths`` overriding them."""
    with open(os.path.join(ROLE_DIR, "vars", "main.yml")) as handle:
        raw = yaml.safe_load(handle)
    values = {k[len("__neuron_dump_") :]: v for k, v in raw.items() if isinstance(v, str) and "(" not in v}
    with open(os.path.join(REPO_ROOT, "galaxy.yml")) as handle:
        values.update(version=yaml.safe_load(handle)["version"], **paths)

    def resolve(match):
        return values[match.group(1)[len("__neuron_dump_") :]]

    for _pass in range(3):  # "{{ __neuron_dump_state_dir }}/dumps" and the like
        values.update({k: _REF.sub(resolve, v) for k, v in values.items()})
    return values


def render(template, python="/usr/bin/python3", **paths):
    """The text the role writes from ``templates/<template>``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(ROLE_DIR, "templates")),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    names = {"__neuron_dump_" + k: v for k, v in role_values(**paths).items()}
    return env.get_template(template).render(names, neuron_dump_python=python)


def _write(path, text, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def install(lib_dir, **paths):
    """Copy the package to ``lib_dir`` with the shared rules and its ``layout.py``; ``paths`` override the role's
    (``config_file=``, ``vendor=``, ``spool_dir=`` ...). Returns the package directory."""
    target = os.path.join(lib_dir, "neuron_core_dump")
    shutil.copytree(PACKAGE_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in SHARED:
        shutil.copy(path, target)
    _write(os.path.join(target, "layout.py"), render("layout.py.j2", lib_dir=lib_dir, **paths), 0o644)
    return target


def write_scripts(lib_dir, hook, cli, hook_python, cli_python, **paths):
    """The hook and CLI entry scripts at ``hook`` and ``cli``, for the package in ``lib_dir``."""
    paths.update(lib_dir=lib_dir, hook=hook, cli=cli)
    _write(hook, render("bin/neuron-dump.j2", hook_python, **paths), 0o755)
    _write(cli, render("bin/neuron-core-dump.j2", cli_python, **paths), 0o755)


_IMPORTABLE = []


def importable():
    """A directory to put on sys.path: the package with the role's own layout (made once per process)."""
    if not _IMPORTABLE:
        base = tempfile.mkdtemp(prefix="ncd-pkg-")
        atexit.register(shutil.rmtree, base, True)
        install(base)
        _IMPORTABLE.append(base)
    return _IMPORTABLE[0]
