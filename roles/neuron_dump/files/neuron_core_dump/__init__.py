"""neuron_core_dump: the host program behind the custom ``neuron-dump`` hook.

The package is deliberately split into small modules with one job each. The hook's
import path (hook -> flags, config, fastjson, log, fsutil, hostinfo, record, spool,
vendor, trigger) uses the standard library only and avoids modules that are slow to
import (json, re, signal, subprocess, enum), because the Neuron runtime blocks on the
hook. boto3 is imported lazily, by the uploader only. The version and the host paths are
in ``layout``, written at install time from galaxy.yml and the role's variables.
"""
