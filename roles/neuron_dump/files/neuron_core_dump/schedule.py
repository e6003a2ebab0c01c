"""Which dumps the uploader works on, in which order: fair across uids, bounded per uid.

Queue entries are grouped by (dump dir, owner uid): 64 ranks x 3 calls into one
directory become one upload (:class:`Group`). :func:`order` serves the groups
round-robin across uids, oldest first within a uid, at most
``max_pending_dumps_per_uid`` of a uid per pass and none of a uid past
``max_bytes_per_uid_per_hour``; the rest is *held* (left queued, counted, resumed by a
later pass). :func:`admit` places entries that arrived during a pass: a uid with
nothing waiting goes first, so a flood's pass never delays another user's dump.
"""


class Group:
    """The queue entries of one dump dir and owner."""

    def __init__(self, dump_dir, uid):
        self.dump_dir = dump_dir
        self.uid = uid
        self.names = []
        self.prefixes = []  # distinct, in claim order
        self.first_ns = None
        self.instance_id = None

    @property
    def key(self):
        return (self.dump_dir, self.uid)

    def add(self, name, queued):
        entry = queued["entry"]
        self.names.append(name)
        if entry.get("s3_prefix") not in self.prefixes:
            self.prefixes.append(entry.get("s3_prefix"))
        claimed = int(queued.get("claimed_ns") or 0)
        self.first_ns = claimed if self.first_ns is None else min(self.first_ns, claimed)
        self.instance_id = self.instance_id or entry.get("instance_id")


def key_of(queued):
    return (queued["entry"]["dump_dir"], queued.get("uid", -1))


def group(entries):
    """{(dump dir, uid): Group} of queue entries ({name: queued entry})."""
    groups = {}
    for name, queued in entries.items():
        key = key_of(queued)
        groups.setdefault(key, Group(*key)).add(name, queued)
    return groups


def order(groups, max_per_uid, uids_over_bytes):
    """(groups to work on now, in round-robin order across uids; number held back)."""
    by_uid = {}
    for item in sorted(groups, key=lambda g: (g.first_ns or 0, g.dump_dir)):
        by_uid.setdefault(item.uid, []).append(item)
    held = 0
    lanes = []
    for uid, lane in sorted(by_uid.items(), key=lambda pair: pair[1][0].first_ns or 0):
        if uid in uids_over_bytes:
            held += len(lane)
            continue
        held += max(0, len(lane) - max_per_uid)
        lanes.append(lane[:max_per_uid])
    ordered = []
    for index in range(max((len(lane) for lane in lanes), default=0)):
        ordered.extend(lane[index] for lane in lanes if index < len(lane))
    return ordered, held


def admit(arrived, pending):
    """Put the groups that arrived during a pass into ``pending`` (a deque): oldest first; a uid
    with nothing waiting goes to the front, others queue behind."""
    waiting_uids = {item.uid for item in pending}
    for item in sorted(arrived, key=lambda g: g.first_ns or 0):
        if item.uid in waiting_uids:
            pending.append(item)
        else:
            pending.appendleft(item)
            waiting_uids.add(item.uid)
