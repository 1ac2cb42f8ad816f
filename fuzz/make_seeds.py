#!/usr/bin/env python3
"""Writes the hand-made seed corpus of every fuzz target into fuzz/corpus/<target>/.

Seeds are real shapes: frames of both middleware protocols and query answers as
shared/truenas-api/REFERENCE.md documents them, the desired-state documents of
tests/data/desired/, DSSE envelopes signed with the fixed fuzz key (seed bytes all 7,
`FUZZ_SIGNING_SEED` in fuzz/targets.rs), report-spool logs in the on-disk format of
crates/agent/src/central/spool.rs, `zfs`/`zpool` output and stderr of OpenZFS 2.3, B2 v4 replies from
shared/b2/REFERENCE.md, simulator frames, and agent configs from docs/configuration.md.
Secret values are the canaries of tests/it/support.rs, so the redaction oracles watch them.

Run from the repository root: `python3 fuzz/make_seeds.py` (needs the `cryptography`
package for Ed25519). It only writes files named `seed-*`; inputs the fuzzer found and
that were kept (named by their SHA-1) are left alone.
"""

import base64
import hashlib
import json
import pathlib
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
DESIRED = ROOT / "tests" / "data" / "desired"
B2DATA = ROOT / "tests" / "data" / "b2"

APPKEY = "CANARY-B2-APPKEY-7f3a9c"
PASSWORD = "CANARY-ENC-PASSWORD-2b8e41"
SALT = "CANARY-ENC-SALT-9d0c55"
SNMP_AUTH = "CANARY-SNMP-AUTH-61aa07"
SNMP_PRIV = "CANARY-SNMP-PRIV-c4e2f8"
GUID = "9babab19-acc0-4587-aa05-ccd8103a1148"
BUCKET = "truenas-a1b2c3d4e5f670718293a4b5c6d7e8f9"
CONFIG_TYPE = "application/vnd.truenas-agent.config.v1+json"


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode()
    (folder / f"seed-{name}").write_bytes(data)


def date(ms):
    return {"$date": ms}


JOB = {
    "id": 42, "method": "cloudsync.sync", "arguments": [1, {"dry_run": False}],
    "transient": False, "description": None, "abortable": True,
    "logs_path": "/var/log/jobs/42.log", "logs_excerpt": None,
    "progress": {"percent": 12, "description": "Transferred 1 GiB", "extra": None},
    "result": None, "error": None, "exception": None, "exc_info": None,
    "state": "RUNNING", "time_started": date(1763856000000), "time_finished": None,
    "credentials": {"type": "UNIX_SOCKET", "data": {"username": "root"}},
}

CRED_24 = {"id": 1, "name": BUCKET, "provider": "B2",
           "attributes": {"account": "0051a2b3c4d5e6f0000000001", "key": APPKEY}}
CRED_25 = {"id": 1, "name": BUCKET,
           "provider": {"type": "B2", "account": "0051a2b3c4d5e6f0000000001", "key": APPKEY}}
TASK = {
    "id": 3, "description": "Pool0 Cloud Backup", "path": "/mnt/pool0", "credentials": CRED_25,
    "attributes": {"bucket": BUCKET, "folder": f"/{GUID}/pool0", "chunk_size": 96,
                   "fast_list": True},
    "schedule": {"minute": "0", "hour": "0", "dom": "*", "month": "*", "dow": "*"},
    "pre_script": "", "post_script": "", "snapshot": False, "include": [],
    "exclude": ["/Archive/**", "/archive/**"], "args": "", "enabled": True,
    "bwlimit": [{"time": "00:00", "bandwidth": 10000000}, {"time": "08:00", "bandwidth": 2500000},
                {"time": "18:00", "bandwidth": 10000000}],
    "transfers": None, "direction": "PUSH", "transfer_mode": "SYNC", "encryption": True,
    "filename_encryption": False, "encryption_password": PASSWORD, "encryption_salt": SALT,
    "create_empty_src_dirs": False, "follow_symlinks": False, "locked": False,
    "job": dict(JOB, id=None, logs_path=None, state="SUCCESS", time_finished=date(1763859600000)),
}
SNAP_TASK = {
    "id": 4, "dataset": "pool0", "recursive": True, "exclude": [], "lifetime_value": 2,
    "lifetime_unit": "WEEK", "naming_schema": "auto-%Y-%m-%d_%H-%M",
    "schedule": {"minute": "0", "hour": "*", "dom": "*", "month": "*", "dow": "*",
                 "begin": "00:00", "end": "23:59"},
    "allow_empty": False, "enabled": True, "vmware_sync": False,
    "state": {"state": "FINISHED", "datetime": date(1763856000000)},
}
SNMP = {"id": 1, "location": "", "contact": "", "traps": False, "v3": True, "community": "",
        "v3_username": "nmsQwErTyUiOp", "v3_authtype": "SHA", "v3_password": SNMP_AUTH,
        "v3_privproto": "AES", "v3_privpassphrase": SNMP_PRIV, "loglevel": 3, "options": "",
        "zilstat": False}


def rpc_result(id_, result):
    return {"jsonrpc": "2.0", "id": id_, "result": result}


def rpc_error(id_, code, message, errno=None, errname=None, reason=None, extra=None):
    error = {"code": code, "message": message}
    if errno is not None:
        error["data"] = {"error": errno, "errname": errname, "reason": reason,
                         "trace": {"class": "CallError", "frames": [], "formatted": "x",
                                   "repr": "CallError()"},
                         "extra": extra, "py_exception": None}
    return {"jsonrpc": "2.0", "id": id_, "error": error}


def middleware_frame():
    t = "middleware_frame"
    write(t, "rpc-result-job-id", rpc_result(1, 42))
    write(t, "rpc-result-version", rpc_result(2, "25.04.2.6"))
    write(t, "rpc-result-newer-version", rpc_result(2, "26.0.0"))
    write(t, "rpc-result-cloudsync-query", rpc_result(3, [TASK]))
    write(t, "rpc-result-job", rpc_result(4, [JOB]))
    write(t, "rpc-result-ejson", rpc_result(5, {"t": {"$time": "08:30:00"}, "d": {
        "$type": "date", "$value": "2026-11-23"}, "s": {"$set": [1, 2]}, "at": date(-1)}))
    write(t, "rpc-foreign-id", rpc_result("abc", True))
    write(t, "rpc-error-validation", rpc_error(
        6, -32602, "Invalid params", 22, "EINVAL",
        "[EINVAL] cloud_sync_create.bwlimit.0.bandwidth: Input should be greater than 0",
        [["cloud_sync_create.bwlimit.0.bandwidth", "Input should be greater than 0", 22]]))
    write(t, "rpc-error-instance-not-found", rpc_error(
        7, -32602, "Invalid params", 22, "EINVAL", "[ENOENT] None: Task 9 does not exist",
        [[None, "Task 9 does not exist", 2]]))
    write(t, "rpc-error-not-authenticated", rpc_error(
        8, -32001, "Method call error", 207, "ENOTAUTHENTICATED", "Not authenticated"))
    write(t, "rpc-error-not-authorized", rpc_error(
        9, -32001, "Method call error", 13, "EACCES", "Not authorized"))
    write(t, "rpc-error-rate-limit", rpc_error(
        10, -32001, "Method call error", 16, "EBUSY", "Rate Limit Exceeded"))
    write(t, "rpc-error-match-not-found", rpc_error(
        11, -32001, "Method call error", 22, "EINVAL", "MatchNotFound()"))
    write(t, "rpc-error-no-method", rpc_error(
        12, -32001, "Method call error", 201, "ENOMETHOD",
        "Method 'cloudsync.create' not found in 'v25.04.2'"))
    write(t, "rpc-error-method-not-found", rpc_error(13, -32601, "Method does not exist"))
    write(t, "rpc-error-too-many", rpc_error(14, -32000, "Too many concurrent calls"))
    write(t, "rpc-error-parse", rpc_error(None, -32700, "Invalid JSON"))
    write(t, "rpc-event-job", {"jsonrpc": "2.0", "method": "collection_update", "params": {
        "msg": "changed", "collection": "core.get_jobs", "id": 42,
        "fields": dict(JOB, state="SUCCESS", time_finished=date(1763859600000))}})
    write(t, "rpc-event-removed", {"jsonrpc": "2.0", "method": "collection_update",
                                   "params": {"msg": "removed", "collection": "cloudsync.query",
                                              "id": 3}})
    write(t, "rpc-notify-unsubscribed", {"jsonrpc": "2.0", "method": "notify_unsubscribed",
                                         "params": {"collection": "core.get_jobs", "error": {
                                             "error": 22, "errname": "EINVAL",
                                             "reason": "event source failed"}}})
    write(t, "legacy-connected", {"msg": "connected", "session": "5f0c2a9e"})
    write(t, "legacy-failed", {"msg": "failed", "version": "1"})
    write(t, "legacy-pong", {"msg": "pong", "id": "p1"})
    write(t, "legacy-ready", {"msg": "ready", "subs": ["17", "x"]})
    write(t, "legacy-result", {"id": "17", "msg": "result", "result": [CRED_24]})
    write(t, "legacy-error-validation", {"id": "18", "msg": "result", "error": {
        "error": 11, "errname": "EAGAIN", "type": "VALIDATION",
        "reason": "[EINVAL] snmp_update.v3_password: must be at least 8 characters",
        "trace": None, "extra": [["snmp_update.v3_password", "must be at least 8 characters", 22]]}})
    write(t, "legacy-error-call", {"id": "19", "msg": "result", "error": {
        "error": 2, "errname": "ENOENT", "type": None, "reason": "Dataset pool9 not found",
        "trace": None, "extra": None}})
    write(t, "legacy-event-added", {"msg": "added", "collection": "core.get_jobs", "id": 43,
                                    "fields": dict(JOB, id=43, state="WAITING")})
    write(t, "legacy-nosub", {"msg": "nosub", "collection": "core.get_jobs", "error": None})


def middleware_objects():
    t = "middleware_objects"
    write(t, "credentials-24-10", [CRED_24])
    write(t, "credentials-25-04", [CRED_25, dict(CRED_25, id=2, provider={
        "type": "S3", "access_key_id": "x", "secret_access_key": "********"})])
    write(t, "cloudsync-query", [TASK])
    write(t, "cloudsync-redacted", [dict(TASK, encryption_password="********",
                                         encryption_salt="********", job=None,
                                         credentials=2, bwlimit=[{"time": "8:00",
                                                                  "bandwidth": None}])])
    write(t, "snapshottask-query", [SNAP_TASK])
    write(t, "snmp-config", SNMP)
    write(t, "pool-query", [{"id": 1, "name": "pool0", "guid": "11053582731939540419",
                             "path": "/mnt/pool0", "status": "ONLINE", "healthy": True},
                            {"id": 2, "name": "pool1", "status": "OFFLINE", "healthy": False}])
    write(t, "dataset-query-25-04", [{"id": "pool0", "type": "FILESYSTEM", "pool": "pool0",
                                      "user_properties": {"com.dtctoday:device-guid": {
                                          "value": GUID, "rawvalue": GUID, "parsed": GUID,
                                          "source": "LOCAL", "source_info": None}}}])
    write(t, "dataset-query-inherited", [{"id": "pool0", "user_properties": {
        "com.dtctoday:device-guid": {"value": GUID, "rawvalue": GUID, "source": "INHERITED",
                                     "source_info": "inherited from pool0"}}}])
    write(t, "dataset-query-other", [{"id": "pool1", "user_properties": {}}])
    write(t, "service-query", [{"id": 9, "service": "snmp", "enable": True, "state": "RUNNING",
                                "pids": [812]}])


def desired_document():
    t = "desired_document"
    example = (DESIRED / "example.json").read_bytes()
    write(t, "example", example)
    for path in sorted((DESIRED / "invalid").glob("*.json")):
        write(t, f"invalid-{path.stem}", path.read_bytes())
    write(t, "envelope-unsigned", {"payloadType": CONFIG_TYPE,
                                   "payload": base64.b64encode(example).decode(),
                                   "signatures": []})


def sign(payload_type, payload, key):
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)
    return key.sign(pae)


def central_envelope():
    t = "central_envelope"
    key = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
    other = Ed25519PrivateKey.from_private_bytes(bytes([9] * 32))
    example = (DESIRED / "example.json").read_bytes()
    b64 = lambda b: base64.b64encode(b).decode()

    def envelope(payload, sigs, payload_type=CONFIG_TYPE, enc=b64):
        return {"payloadType": payload_type, "payload": enc(payload),
                "signatures": [{"keyid": k, "sig": enc(s)} for k, s in sigs]}

    good = sign(CONFIG_TYPE, example, key)
    write(t, "signed", envelope(example, [("fuzz", good)]))
    write(t, "signed-second-signature", envelope(
        example, [("other", sign(CONFIG_TYPE, example, other)), ("", good)]))
    urlsafe = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
    write(t, "signed-urlsafe-unpadded", envelope(example, [("fuzz", good)], enc=urlsafe))
    write(t, "signed-by-other-key", envelope(example, [("other", sign(CONFIG_TYPE, example, other))]))
    write(t, "wrong-payload-type", envelope(example, [("fuzz", sign("text/plain", example, key))],
                                            payload_type="text/plain"))
    write(t, "tampered-payload", envelope(example.replace(b'"revision": 7', b'"revision": 8'),
                                          [("fuzz", good)]))
    write(t, "no-signatures", envelope(example, []))
    write(t, "too-many-signatures", envelope(example, [("k", good)] * 17))
    small = b'{"schema":"truenas-agent.config/v1","revision":0}'
    write(t, "signed-revision-zero", envelope(small, [("fuzz", sign(CONFIG_TYPE, small, key))]))
    write(t, "signed-not-an-object", envelope(b"[1]", [("fuzz", sign(CONFIG_TYPE, b"[1]", key))]))
    write(t, "bad-base64", {"payloadType": CONFIG_TYPE, "payload": "!!!", "signatures": []})
    write(t, "unknown-field", dict(envelope(example, []), extra=1))
    write(t, "missing-keyid", {"payloadType": CONFIG_TYPE, "payload": b64(example),
                               "signatures": [{"sig": b64(good)}]})
    public = key.public_key().public_bytes_raw()
    write(t, "trusted-key", "ed25519:" + b64(public))


REPORT = {
    "schema": "truenas-agent.report/v1", "report_id": "0b7c6a4e-2f1d-4c1e-9d5b-3a2f1e0d9c8b",
    "created_at": "2026-11-23T10:00:00Z",
    "agent": {"version": "0.1.0 (abc1234)", "mode": "enforce", "config_source": "central",
              "dropped_reports": 2},
    "device": {"guid": GUID, "guid_source": "zfs", "hostname": "nas1",
               "truenas_version": "25.04.2.6", "api": "25.04", "root_pool": "pool0",
               "pools": [{"name": "pool0", "healthy": True}]},
    "config": {"revision": 7, "state": "failed",
               "errors": [{"path": "b2.application_key", "message": f"rejected {APPKEY}"}],
               "changes": [{"target": "cloud_sync[pool0]", "action": "update",
                            "fields": ["bwlimit"]}],
               "drift": [{"target": "snmp", "fields": ["v3_password"], "corrected": True}]},
    "health": {"cloud_sync": [{"pool": "pool0", "task_id": 3, "state": "FAILED",
                               "last_started": "2026-11-23T00:00:00Z",
                               "last_finished": "2026-11-23T00:10:00.123Z",
                               "last_success": None, "overdue": False,
                               "error_class": "auth", "message": f"key {APPKEY} refused"}],
               "snapshots": [{"pool": "pool0", "task_id": 4, "latest": "pool0@auto-2026-11-23_09-00",
                              "latest_age_s": 3600, "count": 336}]},
    "checklist": [{"id": "sop.cloud_sync.exclude", "title": "Exclude /Archive/**",
                   "status": "pass", "detail": ""}],
}


def central_payload():
    t = "central_payload"
    write(t, "report", REPORT)
    write(t, "report-minimal", {"schema": "truenas-agent.report/v1",
                                "report_id": "0b7c6a4e-2f1d-4c1e-9d5b-3a2f1e0d9c8b",
                                "created_at": "2026-11-23T10:00:00+01:00"})
    write(t, "revision-only", {"revision": 7, "other": [1, 2]})
    write(t, "revision-huge", b'{"revision": 18446744073709551616}')
    write(t, "revision-float", b'{"revision": 7.0}')
    write(t, "retry-after-seconds", "120")
    write(t, "retry-after-date", "Wed, 21 Oct 2015 07:28:00 GMT")
    write(t, "retry-after-far-future", "Fri, 31 Dec 9999 23:59:59 GMT")


def spool_record(kind, seq, aux, payload=b""):
    body = bytes([kind]) + struct.pack(">QQI", seq, aux, len(payload)) + payload
    return b"TAS1" + body + hashlib.sha256(body).digest()[:8]


def report_spool():
    t = "report_spool"
    report = json.dumps(REPORT).encode()
    r1 = spool_record(ord("R"), 1, 0, report)
    r2 = spool_record(ord("R"), 2, 3, b"{}")
    a1 = spool_record(ord("A"), 1, 0)
    l5 = spool_record(ord("L"), 5, 0)
    write(t, "clean-log", r1 + a1 + l5 + r2)
    write(t, "torn-report-tail", r1 + r2[:-3])
    write(t, "torn-bookkeeping-tail", r1 + a1[:10])
    write(t, "corrupt-middle", r1 + b"garbage" + bytes(40) + r2)
    write(t, "bad-checksum", r1[:-1] + bytes([r1[-1] ^ 1]) + r2)
    write(t, "extreme-values", spool_record(ord("R"), 2**64 - 1, 2**64 - 1, b"{}")
          + spool_record(ord("L"), 2**64 - 1, 0) + spool_record(ord("A"), 2**64 - 1, 0))
    write(t, "magic-only", b"TAS1TAS1TAS1R")


def zfs_output():
    t = "zfs_output"
    write(t, "get-local", f"pool0\tcom.dtctoday:device-guid\tlocal\t{GUID}\n")
    write(t, "get-unset", "pool0\tcom.dtctoday:device-guid\t-\t-\n")
    write(t, "get-inherited", f"pool0\tcom.dtctoday:device-guid\tinherited from tank\t{GUID}\n")
    write(t, "get-received-tab-value", "pool0\tcom.dtctoday:device-guid\treceived\ta\tb\n")
    write(t, "get-two-records", f"pool0\tcom.dtctoday:device-guid\tlocal\tx\npool0\tcom.dtctoday:device-guid\tlocal\ty\n")
    write(t, "get-wrong-dataset", f"pool1\tcom.dtctoday:device-guid\tlocal\t{GUID}\n")
    write(t, "pools", "pool0\npool1\nboot-pool\n")
    write(t, "pools-none", "no pools available\n")
    write(t, "pools-bad-name", "mirror0\n0pool\n")
    write(t, "stderr-no-dataset", "cannot open 'pool9': dataset does not exist\n")
    write(t, "stderr-permission", "Permission denied the ZFS utilities must be run as root.\n")
    write(t, "stderr-no-module", "The ZFS modules are not loaded.\nTry running 'modprobe zfs' as root to load them.\n")
    write(t, "names", "pool0/data/set\ncom.dtctoday:device-guid\n-value\npool0@snap\n")


def b2_response():
    t = "b2_response"
    write(t, "authorize-v4", {
        "accountId": "0123456789ab", "authorizationToken": "4_CANARY-B2-TOKEN",
        "apiInfo": {"storageApi": {
            "apiUrl": "https://api005.backblazeb2.com",
            "downloadUrl": "https://f005.backblazeb2.com",
            "s3ApiUrl": "https://s3.eu-central-003.backblazeb2.com",
            "recommendedPartSize": 100000000, "absoluteMinimumPartSize": 5000000,
            "allowed": {"buckets": [{"id": "4a48fe8875c6214145260818", "name": BUCKET}],
                        "capabilities": ["listBuckets", "readBucketEncryption",
                                         "readBucketRetentions", "listFiles", "readFiles",
                                         "writeFiles"],
                        "namePrefix": None}},
            "groupsApi": {}}})
    write(t, "authorize-plain-http", {
        "accountId": "0123456789ab", "authorizationToken": "4_x",
        "apiInfo": {"storageApi": {"apiUrl": "http://api005.backblazeb2.com",
                                   "downloadUrl": "https://f005.backblazeb2.com"}}})
    bucket = {
        "accountId": "0123456789ab", "bucketId": "4a48fe8875c6214145260818", "bucketName": BUCKET,
        "bucketType": "allPrivate", "bucketInfo": {}, "corsRules": [],
        "defaultServerSideEncryption": {"isClientAuthorizedToRead": True,
                                        "value": {"mode": "SSE-B2", "algorithm": "AES256"}},
        "fileLockConfiguration": {"isClientAuthorizedToRead": True, "value": {
            "isFileLockEnabled": True,
            "defaultRetention": {"mode": "compliance", "period": {"duration": 14, "unit": "days"}}}},
        "lifecycleRules": [{"fileNamePrefix": "", "daysFromHidingToDeleting": 30,
                            "daysFromUploadingToHiding": None}],
        "options": [], "revision": 3}
    write(t, "list-buckets", {"buckets": [bucket]})
    write(t, "list-buckets-gated", {"buckets": [dict(
        bucket, bucketType="allPublic",
        defaultServerSideEncryption={"isClientAuthorizedToRead": False},
        fileLockConfiguration={"isClientAuthorizedToRead": False, "value": None},
        lifecycleRules=[])]})
    write(t, "list-buckets-years", {"buckets": [dict(bucket, fileLockConfiguration={
        "isClientAuthorizedToRead": True, "value": {"isFileLockEnabled": True, "defaultRetention": {
            "mode": "governance", "period": {"duration": 18446744073709551615, "unit": "years"}}}})]})
    write(t, "list-buckets-empty", {"buckets": []})
    files = [
        {"fileName": f"{GUID}/pool0/docs/report.pdf.bin", "action": "upload",
         "contentLength": 65601, "serverSideEncryption": {"mode": "SSE-B2", "algorithm": "AES256"}},
        {"fileName": f"{GUID}/pool0/docs/invoice.txt", "action": "upload", "contentLength": 74},
        {"fileName": f"{GUID}/pool0/Archive/old.bin", "action": "upload", "contentLength": 48},
        {"fileName": f"{GUID}/pool0/e0ht5gecakn8id9n92puukaq00/ac1qa00toutd0it6egrfef1m1o",
         "action": "upload", "contentLength": 18446744073709551615},
        {"fileName": f"{GUID}/pool0/.bzEmpty", "action": "folder", "contentLength": 0},
    ]
    write(t, "list-file-names", {"files": files, "nextFileName": None})
    write(t, "error-body", {"status": 401, "code": "unauthorized", "message": "bad key"})
    for path in sorted(B2DATA.glob("*")):
        if path.suffix != ".md":
            write(t, f"object-{path.name}", path.read_bytes())
    write(t, "rclone-version", "rclone v1.66.0\n- os/version: debian 12.5 (64 bit)\n")


def sim_frame():
    t = "sim_frame"

    def rpc(i, method, params):
        return json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params})

    def legacy(i, method, params):
        return json.dumps({"id": str(i), "msg": "method", "method": method, "params": params})

    create_task = {k: v for k, v in TASK.items()
                   if k not in ("id", "job", "locked", "credentials")}
    create_task["credentials"] = 1
    snap = {k: v for k, v in SNAP_TASK.items() if k not in ("id", "state", "vmware_sync")}
    for flavor, provider in ((0, CRED_24), (1, CRED_25), (2, CRED_25)):
        cred = {k: v for k, v in provider.items() if k != "id"}
        lines = [rpc(1, "cloudsync.credentials.create", [cred]),
                 rpc(2, "cloudsync.create", [create_task]),
                 rpc(3, "cloudsync.sync", [1]),
                 rpc(4, "pool.snapshottask.create", [snap]),
                 rpc(5, "core.get_jobs", [[["method", "=", "cloudsync.sync"]],
                                          {"order_by": ["-id"], "limit": 1}])]
        write(t, f"provision-{flavor}", bytes([flavor]) + "\n".join(lines).encode())
    write(t, "snmp-and-service", bytes([1]) + "\n".join([
        rpc(1, "snmp.update", [{k: v for k, v in SNMP.items() if k != "id"}]),
        rpc(2, "service.update", ["snmp", {"enable": True}]),
        rpc(3, "service.start", ["snmp", {"ha_propagate": True, "silent": True}]),
        rpc(4, "service.query", [[["service", "=", "snmp"]]])]).encode())
    write(t, "dataset-user-property", bytes([2]) + "\n".join([
        rpc(1, "pool.dataset.update", ["pool0", {"user_properties_update": [
            {"key": "com.dtctoday:device-guid", "value": GUID}]}]),
        rpc(2, "pool.dataset.query", [[["id", "=", "pool0"]], {"extra": {
            "retrieve_children": False, "properties": [], "retrieve_user_props": True}}]),
        rpc(3, "system.version_short", [])]).encode())
    write(t, "legacy", bytes([0]) + "\n".join([
        json.dumps({"msg": "connect", "version": "1", "support": ["1"]}),
        legacy(1, "pool.query", [[["name", "^", "pool"]], {"select": ["name", ["status", "s"]]}]),
        legacy(2, "cloudsync.credentials.create", [{k: v for k, v in CRED_24.items() if k != "id"}]),
        json.dumps({"msg": "sub", "id": "9", "name": "core.get_jobs"}),
        json.dumps({"msg": "ping"})]).encode())
    write(t, "bad-frames", bytes([1]) + "\n".join([
        "[1]", "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"core.ping\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"core.ping\",\"params\":{}}",
        rpc(1, "no.such.method", []), rpc(2, "cloudsync.delete", [99])]).encode())
    entries = [{"id": 1, "name": "b", "n": 3}, {"id": 2, "name": 5, "n": None},
               {"id": 3, "name": "a", "n": "x"}, {"id": 4, "n": True}]
    write(t, "query", bytes([1]) + "\n".join([
        rpc(1, "sim.query", [entries, [["name", "~", "^[ab]"]], {"order_by": ["-name", "nulls_first:n"]}]),
        rpc(2, "sim.query", [entries, [["OR", [["id", ">", 2], ["n", "in", [3]]]]],
                             {"order_by": ["name"], "offset": 1, "limit": 2, "count": False}]),
        rpc(3, "sim.query", [entries, [], {"get": True, "select": ["id", "name"]}])]).encode())


def agent_config():
    t = "agent_config"
    write(t, "documented", """state_dir = "/mnt/pool0/.truenas-agent/state"
guid_property = "com.dtctoday:device-guid"
root_pool = "pool0"

[central]
url = "https://central.example-msp.com/"
token_file = "/mnt/pool0/.truenas-agent/token"
ca_file = "/mnt/pool0/.truenas-agent/msp-ca.pem"
trusted_keys = ["ed25519:95iRkRO+Oy3MrUY0keXHFFVqYkG/texR4fqzsBfWAqc="]
poll_interval_secs = 300
long_poll_wait_secs = 50
report_interval_secs = 300
spool_max_bytes = 10485760

[middleware]
url = "wss://127.0.0.1:443/api/current"
api_key_file = "/root/api.key"
api_user = "agent"
tls_pin = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"
""")
    write(t, "loopback-unsigned", """[central]
url = "http://127.0.0.1:8080"
token_file = "/t"
allow_unsigned = true
long_poll_wait_secs = 0
""")
    write(t, "invalid", """state_dir = "relative"
guid_property = "NoColon"
root_pool = "mirror"
[central]
url = "http://localhost/x?y"
token_file = "t"
trusted_keys = ["ed25519:AAAA", "ed25519:AAAA"]
allow_unsigned = true
poll_interval_secs = 1
report_interval_secs = 999999
spool_max_bytes = 0
[middleware]
url = "ws://example.com"
api_user = "x"
tls_pin = "zz"
""")
    write(t, "unknown-key", "colour = 1\n[central]\nurl = 5\n")


if __name__ == "__main__":
    for make in (middleware_frame, middleware_objects, desired_document, central_envelope,
                 central_payload, report_spool, zfs_output, b2_response, sim_frame, agent_config):
        make()
    for folder in sorted(CORPUS.iterdir()):
        print(f"{folder.name}: {len(list(folder.iterdir()))} files")
