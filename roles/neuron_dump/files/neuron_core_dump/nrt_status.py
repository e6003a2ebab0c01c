"""The runtime's return codes (the values of ``--error-code``) and their ``NRT_*`` names.

Source: the ``NRT_STATUS`` enum of the runtime's public header
``src/libnrt/include/nrt/nrt_status.h`` in https://github.com/aws-neuron/aws-neuron-sdk
(read at commit 56dcc0f99c705b3c973d0983784e92fd1464c324), the same table as the "API Return
Codes" of ``neuron-runtime/guides/nrt-developer-guide.rst`` (docs/runtime-contract.md, source
S5). 8 and 12 are unused. The header calls 101 ``NRT_EXEC_UNIT_DISABLED``; the rendered API page
(``neuron-runtime/api/nrt_status.rst``) calls it ``NRT_EXEC_UNIT_UNRECOVERABLE`` and the guide
spells 1006 ``NRT_OOB``: both spellings are accepted as names, the header's is reported.

This is the project's only copy of the table.
"""

NAMES = {
    0: "NRT_SUCCESS",
    1: "NRT_FAILURE",
    2: "NRT_INVALID",
    3: "NRT_INVALID_HANDLE",
    4: "NRT_RESOURCE",
    5: "NRT_TIMEOUT",
    6: "NRT_HW_ERROR",
    7: "NRT_QUEUE_FULL",
    9: "NRT_LOAD_NOT_ENOUGH_NC",
    10: "NRT_UNSUPPORTED_NEFF_VERSION",
    11: "NRT_FAIL_HOST_MEM_ALLOC",
    13: "NRT_UNINITIALIZED",
    14: "NRT_CLOSED",
    15: "NRT_QUEUE_EMPTY",
    101: "NRT_EXEC_UNIT_DISABLED",
    1002: "NRT_EXEC_BAD_INPUT",
    1003: "NRT_EXEC_COMPLETED_WITH_NUM_ERR",
    1004: "NRT_EXEC_COMPLETED_WITH_ERR",
    1005: "NRT_EXEC_NC_BUSY",
    1006: "NRT_EXEC_OOB",
    1100: "NRT_COLL_PENDING",
    1200: "NRT_EXEC_HW_ERR_COLLECTIVES",
    1201: "NRT_EXEC_HW_ERR_HBM_UE",
    1202: "NRT_EXEC_HW_ERR_NC_UE",
    1203: "NRT_EXEC_HW_ERR_DMA_ABORT",
    1204: "NRT_EXEC_SW_NQ_OVERFLOW",
    1205: "NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE",
    1206: "NRT_NETWORK_PROXY_FAILURE",
}

_ALIASES = {"NRT_EXEC_UNIT_UNRECOVERABLE": 101, "NRT_OOB": 1006}
CODES = dict({name: code for code, name in NAMES.items()}, **_ALIASES)

# the enum is a C int; anything outside is not a return code (a forged or garbled record)
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1


def parse(value):
    """(code or None, name or None) of an ``--error-code`` value: a decimal number or an ``NRT_*`` name.

    Whether the runtime passes the number or the name is not documented; both are read. An
    unknown number keeps its code with no name; anything else gives (None, None).
    """
    if not isinstance(value, str) or not 0 < len(value) <= 40:
        return None, None
    text = value.strip()
    if text in CODES:
        code = CODES[text]
        return code, NAMES[code]
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isdigit() or not digits.isascii():
        return None, None
    code = int(text)
    if not _INT_MIN <= code <= _INT_MAX:
        return None, None
    return code, NAMES.get(code)
