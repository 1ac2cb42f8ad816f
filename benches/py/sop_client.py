#!/usr/bin/env python3
"""The SOP provisioning pass written the way an MSP would script it in Python.

The comparison point of benchmark (5) in docs/benchmarks.md. It does the same work as
`truenas-agent apply -f DOC` against the same middleware socket, with an existing
Python TrueNAS JSON-RPC client from PyPI: pytruenas (pinned in requirements.txt), which
speaks JSON-RPC 2.0 over the middleware's unix socket (``ws+unix://``), the transport
the agent uses.

Same work means the same middleware calls in the same order, checked against the
simulator's call record by benches/bench.py:

0. system.version_short: this script speaks the 25.04+ credential shape only;
1. observe: pool.query, pool.dataset.query (root datasets, user properties),
   cloudsync.credentials.query, cloudsync.query, pool.snapshottask.query, snmp.config,
   service.query [snmp];
2. compare with the document (SOP defaults, the same derived names and values);
3. write what is missing or different: the B2 credential, verify it and check the
   bucket is listed, one Cloud Sync task and one snapshot task per pool, SNMPv3, the
   SNMP service enabled and started, the first-run action;
4. when something was written, observe again and check the result.

A converged box therefore costs the version read and the seven reads (the steady-state
check). Unlike the agent, it does not subscribe to job events before starting the
first-run sync (it does not watch the job), so a fresh pass makes one call fewer.

It only handles what the benchmark's documents use (25.04+ credential shape, a business
window that does not cross midnight, no `adopt`, no drift of foreign objects). Secrets
stay in memory and are never printed. Prints one JSON line: timings (seconds since the
script started) and what it did.
"""

import json
import sys
import time

T0 = time.perf_counter()
from pytruenas import TrueNASClient  # noqa: E402  (import time is measured)

T_IMPORTED = time.perf_counter()

SNMP = "snmp"
CLOUD_SYNC_DEFAULTS = {
    "schedule": "0 0 * * *",
    "exclude": ["/Archive/**", "/archive/**"],
    "chunk_size_mib": 96,
    "fast_list": True,
    "transfers": None,
    "filename_encryption": False,
    "enabled": True,
    "follow_symlinks": False,
    "take_snapshot": False,
}
SNAPSHOT_DEFAULTS = {
    "schedule": "0 * * * *",
    "begin": "00:00",
    "end": "23:59",
    "lifetime_value": 2,
    "lifetime_unit": "WEEK",
    "naming_schema": "auto-%Y-%m-%d_%H-%M",
    "recursive": True,
    "exclude": [],
    "allow_empty": False,
    "enabled": True,
}


def cron(text):
    minute, hour, dom, month, dow = text.split()
    return {"minute": minute, "hour": hour, "dom": dom, "month": month, "dow": dow}


def bytes_per_second(uplink_mbps, percent):
    kbit = int(uplink_mbps * 1000)
    return max(1, kbit * percent * 5 // 4)


def bwlimit(bw):
    if not bw:
        return []
    hours = bw.get("business_hours", {})
    start, end = hours.get("start", "08:00"), hours.get("end", "18:00")
    business = bytes_per_second(bw["uplink_mbps"], bw.get("business_percent", 20))
    off = bytes_per_second(bw["uplink_mbps"], bw.get("off_hours_percent", 80))
    if start == "00:00":
        return [{"time": "00:00", "bandwidth": business}, {"time": end, "bandwidth": off}]
    return [
        {"time": "00:00", "bandwidth": off},
        {"time": start, "bandwidth": business},
        {"time": end, "bandwidth": off},
    ]


def desired(doc):
    """The objects the SOP wants for this document."""
    dev = doc["device"]
    bucket = "truenas-" + dev["location_uuid"].lower().replace("-", "")
    guid = dev["guid"].lower()
    cs = {**CLOUD_SYNC_DEFAULTS, **doc.get("cloud_sync", {})}
    sn = {**SNAPSHOT_DEFAULTS, **doc.get("snapshots", {})}
    tasks, snaps = {}, {}
    for pool in doc["pools"]:
        tasks[pool] = {
            "description": pool[:1].upper() + pool[1:] + " Cloud Backup",
            "path": f"/mnt/{pool}",
            "attributes": {
                "bucket": bucket,
                "folder": f"/{guid}/{pool}",
                "chunk_size": cs["chunk_size_mib"],
                "fast_list": cs["fast_list"],
            },
            "schedule": cron(cs["schedule"]),
            "pre_script": "",
            "post_script": "",
            "snapshot": cs["take_snapshot"],
            "include": [],
            "exclude": cs["exclude"],
            "args": "",
            "enabled": cs["enabled"],
            "bwlimit": bwlimit(cs.get("bandwidth")),
            "transfers": cs["transfers"],
            "direction": "PUSH",
            "transfer_mode": "SYNC",
            "encryption": True,
            "filename_encryption": cs["filename_encryption"],
            "encryption_password": doc["encryption"]["password"],
            "encryption_salt": doc["encryption"]["salt"],
            "create_empty_src_dirs": False,
            "follow_symlinks": cs["follow_symlinks"],
        }
        snaps[pool] = {
            "dataset": pool,
            "recursive": sn["recursive"],
            "exclude": [e for e in sn["exclude"] if e.startswith(pool + "/")],
            "lifetime_value": sn["lifetime_value"],
            "lifetime_unit": sn["lifetime_unit"],
            "naming_schema": sn["naming_schema"],
            "schedule": {**cron(sn["schedule"]), "begin": sn["begin"], "end": sn["end"]},
            "allow_empty": sn["allow_empty"],
            "enabled": sn["enabled"],
        }
    snmp = None
    if doc.get("snmp"):
        s = doc["snmp"]
        snmp = {
            "v3": True,
            "community": "",
            "v3_username": s["username"],
            "v3_authtype": "SHA",
            "v3_password": s["auth_password"],
            "v3_privproto": "AES",
            "v3_privpassphrase": s["privacy_passphrase"],
        }
    provider = {"type": "B2", "account": doc["b2"]["key_id"], "key": doc["b2"]["application_key"]}
    return {
        "bucket": bucket,
        "provider": provider,
        "tasks": tasks,
        "snaps": snaps,
        "snmp": snmp,
        "actions": doc.get("actions", []),
    }


def observe(api, pools):
    """The seven reads, in the agent's order."""
    seen = {"pools": api.pool.query()}
    names = [p["name"] for p in seen["pools"]]
    seen["datasets"] = api.pool.dataset.query(
        [["id", "in", names]],
        {"extra": {"retrieve_children": False, "properties": [], "retrieve_user_props": True}},
    )
    seen["credentials"] = api.cloudsync.credentials.query()
    seen["tasks"] = api.cloudsync.query()
    seen["snaps"] = api.pool.snapshottask.query()
    seen["snmp"] = api.snmp.config()
    seen["service"] = api.service.query([["service", "=", SNMP]])
    return seen


def norm_cron(c):
    return {k: str(int(v)) if v.isdigit() else v for k, v in c.items()}


def task_matches(have, want, cred_id):
    """Field-by-field comparison over the fields the SOP sets."""
    for key, value in want.items():
        got = have.get(key)
        if key == "attributes":
            if any(got.get(k) != v for k, v in value.items()):
                return False
        elif key == "schedule":
            if norm_cron({k: got[k] for k in ("minute", "hour", "dom", "month", "dow")}) != norm_cron(
                {k: value[k] for k in ("minute", "hour", "dom", "month", "dow")}
            ):
                return False
            if "begin" in value and (got.get("begin"), got.get("end")) != (value["begin"], value["end"]):
                return False
        elif key in ("exclude", "include"):
            if set(got or []) != set(value):
                return False
        elif got != value:
            return False
    cred = have.get("credentials")
    if cred_id is not None and (cred.get("id") if isinstance(cred, dict) else cred) != cred_id:
        return False
    return True


def plan(want, seen):
    steps = []
    cred = next((c for c in seen["credentials"] if c["name"] == want["bucket"]), None)
    cred_ok = cred is not None and cred["provider"] == want["provider"]
    if cred is None:
        steps.append(("create_credential", None))
    elif not cred_ok:
        steps.append(("update_credential", cred["id"]))
    cred_id = cred["id"] if cred else None
    by_path = {t["path"]: t for t in seen["tasks"]}
    for pool, task in want["tasks"].items():
        have = by_path.get(task["path"])
        if have is None:
            steps.append(("create_task", pool))
        elif not task_matches(have, task, cred_id):
            steps.append(("update_task", pool))
    snaps_by_ds = {s["dataset"]: s for s in seen["snaps"]}
    for pool, snap in want["snaps"].items():
        have = snaps_by_ds.get(snap["dataset"])
        if have is None:
            steps.append(("create_snap", pool))
        elif not task_matches(have, snap, None):
            steps.append(("update_snap", pool))
    if want["snmp"]:
        cfg = seen["snmp"]
        changed = {k: v for k, v in want["snmp"].items() if cfg.get(k) != v}
        if changed:
            steps.append(("update_snmp", changed))
        svc = seen["service"][0]
        if not svc["enable"]:
            steps.append(("enable_service", None))
        if svc["state"] != "RUNNING":
            steps.append(("start_service", None))
    for action in want["actions"]:
        task = by_path.get(f"/mnt/{action['pool']}")
        if task is None or task.get("job") is None:
            steps.append(("run_action", action["pool"]))
    return steps


def apply(api, want, seen, steps):
    cred_id = next((c["id"] for c in seen["credentials"] if c["name"] == want["bucket"]), None)
    task_ids = {t["path"].removeprefix("/mnt/"): t["id"] for t in seen["tasks"]}
    verified = False
    for kind, arg in steps:
        if kind == "create_credential":
            cred_id = api.cloudsync.credentials.create({"name": want["bucket"], "provider": want["provider"]})["id"]
        elif kind in ("create_task", "update_task") and not verified:
            check = api.cloudsync.credentials.verify(want["provider"])
            if not check.get("valid"):
                raise SystemExit("the B2 key does not verify")
            buckets = [b["Name"] for b in api.cloudsync.list_buckets(cred_id)]
            if want["bucket"] not in buckets:
                raise SystemExit(f"bucket {want['bucket']} is not listed with this key")
            verified = True
        if kind == "create_task":
            task = {**want["tasks"][arg], "credentials": cred_id}
            task_ids[arg] = api.cloudsync.create(task)["id"]
        elif kind == "create_snap":
            api.pool.snapshottask.create(want["snaps"][arg])
        elif kind == "update_snmp":
            api.snmp.update(arg)
        elif kind == "enable_service":
            api.service.update(SNMP, {"enable": True})
        elif kind == "start_service":
            api.service.start(SNMP, {"ha_propagate": True, "silent": False})
        elif kind == "run_action":
            api.cloudsync.sync(task_ids[arg], {"dry_run": False})
        elif kind.startswith("update_"):
            raise SystemExit(f"{kind} is not part of this benchmark")


def main():
    doc_path, socket = sys.argv[1], sys.argv[2]
    with open(doc_path, encoding="utf-8") as f:
        doc = json.load(f)
    want = desired(doc)
    client = TrueNASClient(f"ws+unix://{socket}")
    api = client.api
    t_connect = time.perf_counter()
    version = api.system.version_short()
    if tuple(int(x) for x in version.split(".")[:2]) < (25, 4):
        raise SystemExit(f"TrueNAS {version}: this script needs 25.04 or later")
    seen = observe(api, doc["pools"])
    steps = plan(want, seen)
    if steps:
        apply(api, want, seen, steps)
        left = plan(want, observe(api, doc["pools"]))
        # The first-run action is started, not awaited: its task has a (waiting) job now.
        if left:
            raise SystemExit(f"not converged: {[k for k, _ in left]}")
    t_done = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": T_IMPORTED - T0,
                "work_s": t_done - T_IMPORTED,
                "setup_s": t_connect - T_IMPORTED,
                "steps": [k for k, _ in steps],
            }
        )
    )


if __name__ == "__main__":
    main()
