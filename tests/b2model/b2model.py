#!/usr/bin/env python3
"""B2 model server: Backblaze's own model of B2 (b2sdk's RawSimulator) over HTTP.

Test infrastructure only. Serves the Backblaze B2 native API (v1-v4 paths) on a loopback
port and answers every call by delegating to ``b2sdk``'s ``RawSimulator`` (Backblaze's
in-memory model of buckets, keys and capabilities, SSE, Object Lock and retention,
lifecycle rules and files). This shim only maps HTTP <-> RawSimulator calls and B2's JSON
error shapes (``{"status", "code", "message"}``); where RawSimulator lacks a rule the real
service has, the smallest faithful addition is made here and listed in README.md (each
with its Backblaze documentation source) -- search this file for ``ADDITION``.

Started by the Rust tests (tests/it/b2model.rs). Prints one JSON line on stdout when ready:
``{"b2model": "ready", "port": N, "apiUrl": ..., "controlUrl": ..., "accountId": ...,
"adminKeyId": ..., "adminKey": ..., "b2sdk": "2.13.2"}`` and exits when stdin closes (so a
killed test never leaves it behind).

Test-control endpoints live under ``/_model/`` (never under ``/b2api/`` or ``/file/``):
  POST /_model/accounts          -> a new account with its master key
  POST /_model/files             -> plant a file version (content, SSE, retention) directly
  POST /_model/bucket-state      -> state old buckets can still have (default SSE ``none``)
  POST /_model/expire-tokens     -> expire the issued auth tokens (of one key, or all)
  GET  /_model/requests          -> every request seen so far (method, path, status)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

PINNED_B2SDK = '2.13.2'

try:
    import b2sdk.version
    from b2sdk import v3 as b2
    # The module RawSimulator raises from (b2sdk.v3.exception re-exports only part of it).
    from b2sdk._internal import exception as b2exc
except ImportError as error:  # pragma: no cover - a setup problem, said plainly
    sys.stderr.write(
        f'b2model: cannot import b2sdk ({error}); create the venv: python3 -m venv '
        'tests/b2model/.venv && tests/b2model/.venv/bin/pip install --require-hashes '
        '-r tests/b2model/requirements.txt\n'
    )
    sys.exit(2)

API = b2.RawSimulator.API_URL  # what RawSimulator expects as api_url in every call

# Not modelled (README "Open points"): b2_create_key's docs allow only bucket-level
# capabilities on a bucket-restricted key; RawSimulator accepts any, and so does this shim.
MAX_LIST_FILE_COUNT = 10000  # b2_list_file_names doc; b2sdk LIST_FILE_NAMES_MAX_LIMIT
MAX_RETENTION_DAYS = 3000  # Object Lock doc: "between one and 3,000 days"
MAX_BODY = 64 * 1024 * 1024


class ApiError(Exception):
    """A B2 error reply: ``{"status": status, "code": code, "message": message}``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, 'bad_request', message)


def from_b2sdk(error: Exception) -> ApiError:
    """RawSimulator raises b2sdk exceptions; B2 answers with status + code. The pairs are
    the inverse of b2sdk's own ``interpret_b2_error`` (b2sdk/_internal/exception.py)."""
    if isinstance(error, ApiError):
        return error
    message = str(error) or type(error).__name__
    if isinstance(error, b2exc.InvalidAuthToken):
        # RawSimulator says 'auth_token_expired'; B2's code is 'expired_auth_token'.
        code = 'expired_auth_token' if error.code == 'auth_token_expired' else error.code
        return ApiError(401, code or 'bad_auth_token', message)
    if isinstance(error, b2exc.Unauthorized):
        return ApiError(401, error.code or 'unauthorized', message)
    table = [
        (b2exc.DuplicateBucketName, 400, 'duplicate_bucket_name'),
        (b2exc.NonExistentBucket, 400, 'bad_bucket_id'),
        (b2exc.FileNotPresent, 404, 'not_found'),
        (b2exc.DisablingFileLockNotSupported, 400, 'file_lock_conflict'),
        (b2exc.SourceReplicationConflict, 400, 'source_replication_conflict'),
        (b2exc.EnablingFileLockOnRestrictedBucket, 400, 'restricted_bucket_conflict'),
        (b2exc.AccessDenied, 403, 'access_denied'),
        (b2exc.Conflict, 409, 'conflict'),
        (b2exc.UnsatisfiableRange, 416, 'range_not_satisfiable'),
        (b2exc.FileSha1Mismatch, 400, 'bad_request'),
        (b2exc.BadJson, 400, 'bad_request'),
        (b2exc.InvalidUserInput, 400, 'bad_request'),
    ]
    for kind, status, code in table:
        if isinstance(error, kind):
            return ApiError(status, code, message)
    if isinstance(error, b2exc.BadRequest):
        return ApiError(400, error.code or 'bad_request', message)
    sys.stderr.write('b2model: unexpected error from RawSimulator\n' + traceback.format_exc())
    return ApiError(500, 'internal_error', f'b2model: {type(error).__name__}: {message}')


def now_millis() -> int:
    return int(time.time() * 1000)


def retention_millis(period: b2.RetentionPeriod) -> int:
    days = period.duration * (365 if period.unit == 'years' else 1)
    return days * 86400 * 1000


class Model:
    """RawSimulator plus the little state the HTTP layer needs (one lock: RawSimulator is
    not thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sim = b2.RawSimulator()
        # ADDITION (b2_authorize_account v4 doc): keys made by v4 b2_create_key with
        # bucketIds are "Multi-Bucket Application Keys": v1-v3 refuse them.
        self.multi_bucket_keys: set[str] = set()
        # Upload URLs: our opaque upload token -> RawSimulator's upload URL.
        self.upload_tokens: dict[str, str] = {}
        self.upload_counter = 0
        self.requests: list[dict] = []
        self.base = ''

    # --- sessions ----------------------------------------------------------------------

    def session(self, headers) -> tuple[str, object]:
        """The account token of a call and its key; B2's 401s otherwise."""
        token = headers.get('Authorization') or ''
        key = self.sim.auth_token_to_key.get(token)
        if key is None:
            raise ApiError(401, 'bad_auth_token', 'Invalid authorization token')
        if token in self.sim.expired_auth_tokens:
            raise ApiError(401, 'expired_auth_token', 'Authorization token has expired')
        if self.sim.key_id_to_key.get(key.application_key_id) is not key:
            # ADDITION: a deleted key's tokens stop working.
            raise ApiError(401, 'bad_auth_token', 'Invalid authorization token')
        return token, key

    @staticmethod
    def account(key, body, required=True) -> str:
        account_id = body.get('accountId')
        if account_id is None:
            if required:
                raise bad_request('required field accountId is missing')
            return key.account_id
        if account_id != key.account_id:
            # RawSimulator only asserts this; B2 refuses the token for another account.
            raise ApiError(401, 'unauthorized', 'accountId does not match the authorization')
        return account_id

    def check(self, token, key, capability, bucket=None, file_name=None):
        """RawSimulator's own capability / bucket / prefix check (``_assert_account_auth``),
        after the account check it only asserts: another account's bucket is 401."""
        if bucket is not None and bucket.account_id != key.account_id:
            raise ApiError(401, 'unauthorized', 'bucket belongs to another account')
        bucket_id = None if bucket is None else bucket.bucket_id
        self.sim._assert_account_auth(API, token, key.account_id, capability, bucket_id, file_name)

    def bucket_by_id(self, bucket_id):
        if not isinstance(bucket_id, str):
            raise bad_request('required field bucketId is missing')
        return self.sim._get_bucket_by_id(bucket_id)

    # --- b2_authorize_account --------------------------------------------------------

    def authorize(self, version: int, headers) -> dict:
        raw = headers.get('Authorization') or ''
        if not raw.startswith('Basic '):
            raise ApiError(401, 'unauthorized', 'missing HTTP Basic authorization')
        try:
            key_id, _, secret = base64.b64decode(raw[6:], validate=True).decode().partition(':')
        except ValueError:
            raise ApiError(401, 'unauthorized', 'malformed HTTP Basic authorization') from None
        key = self.sim.key_id_to_key.get(key_id)
        if key is not None and key.key == secret:
            if version < 4 and key_id in self.multi_bucket_keys:
                # Restic #5741 quotes B2's reply: 400 "This request is not currently
                # supported on API version number 3".
                raise bad_request(
                    f'This request is not currently supported on API version number {version}'
                )
            expires = key.expiration_timestamp_or_none
            if expires is not None and time.time() >= expires:
                # ADDITION: RawSimulator stores the expiry but never checks it.
                raise ApiError(401, 'unauthorized', 'application key has expired')
        reply = self.sim.authorize_account(API, key_id, secret)
        storage = reply['apiInfo']['storageApi']
        storage['apiUrl'] = self.base
        storage['downloadUrl'] = self.base
        reply['applicationKeyExpirationTimestamp'] = (
            key.expiration_timestamp_or_none and key.expiration_timestamp_or_none * 1000
        )
        if version == 4:
            return reply
        allowed = storage['allowed']
        buckets = allowed['buckets'] or [{'id': None, 'name': None}]
        if version == 3:
            return {
                'accountId': reply['accountId'],
                'authorizationToken': reply['authorizationToken'],
                'applicationKeyExpirationTimestamp': reply['applicationKeyExpirationTimestamp'],
                'apiInfo': {
                    'groupsApi': {},
                    'storageApi': {
                        'absoluteMinimumPartSize': storage['absoluteMinimumPartSize'],
                        'apiUrl': self.base,
                        'bucketId': buckets[0]['id'],
                        'bucketName': buckets[0]['name'],
                        'capabilities': allowed['capabilities'],
                        'downloadUrl': self.base,
                        'infoType': 'storageApi',
                        'namePrefix': allowed['namePrefix'],
                        'recommendedPartSize': storage['recommendedPartSize'],
                        's3ApiUrl': storage['s3ApiUrl'],
                    },
                },
            }
        legacy_allowed = {
            'bucketId': buckets[0]['id'],
            'capabilities': allowed['capabilities'],
            'namePrefix': allowed['namePrefix'],
        }
        if version == 2:  # v2 "Return bucket name (Sept 13, 2018)"
            legacy_allowed['bucketName'] = buckets[0]['name']
        return {
            'accountId': reply['accountId'],
            'authorizationToken': reply['authorizationToken'],
            'apiUrl': self.base,
            'downloadUrl': self.base,
            'recommendedPartSize': storage['recommendedPartSize'],
            'absoluteMinimumPartSize': storage['absoluteMinimumPartSize'],
            's3ApiUrl': storage['s3ApiUrl'],
            'allowed': legacy_allowed,
        }

    # --- buckets -------------------------------------------------------------------------

    def list_buckets(self, version, headers, body):
        token, key = self.session(headers)
        account_id = self.account(key, body)
        types = body.get('bucketTypes')
        if types is not None:
            # b2_list_buckets doc: "all" alone, non-empty, valid types only.
            valid = {'all', 'allPrivate', 'allPublic', 'restricted', 'snapshot', 'shared'}
            if (
                not isinstance(types, list)
                or not types
                or ('all' in types and len(types) > 1)
                or not set(types) <= valid
            ):
                raise bad_request(f'invalid bucketTypes: {types!r}')
        reply = self.sim.list_buckets(
            API, token, account_id, bucket_id=body.get('bucketId'),
            bucket_name=body.get('bucketName'),
        )
        # ADDITION (b2_list_buckets doc: "if it's present in the account"): RawSimulator
        # lists every account's buckets.
        reply['buckets'] = [b for b in reply['buckets'] if b['accountId'] == account_id]
        if types is not None and 'all' not in types:
            reply['buckets'] = [b for b in reply['buckets'] if b['bucketType'] in types]
        return reply

    def create_bucket(self, version, headers, body):
        token, key = self.session(headers)
        account_id = self.account(key, body)
        name = body.get('bucketName')
        if not isinstance(name, str):
            raise bad_request('required field bucketName is missing')
        # ADDITION (b2_create_bucket doc): 6-63 characters, letters digits "-", no "b2-".
        if not 6 <= len(name) <= 63:
            raise bad_request(f'Bucket name must be 6 to 63 characters long: {name}')
        if name.lower().startswith('b2-'):
            raise bad_request(f'Bucket names starting with "b2-" are reserved: {name}')
        bucket_type = body.get('bucketType')
        if bucket_type not in ('allPrivate', 'allPublic'):
            raise bad_request(f'bucketType must be allPrivate or allPublic: {bucket_type!r}')
        sse = self.bucket_encryption(body) if 'defaultServerSideEncryption' in body else None
        lock = body.get('fileLockEnabled')
        if lock is not None and not isinstance(lock, bool):
            raise bad_request('fileLockEnabled must be a boolean')
        # ADDITION (b2_create_bucket doc): fileLockEnabled true needs writeBucketRetentions,
        # a default SSE needs writeBucketEncryption.
        if lock:
            self.check(token, key, 'writeBucketRetentions')
        if sse is not None:
            self.check(token, key, 'writeBucketEncryption')
        rules = self.lifecycle_rules(body) if 'lifecycleRules' in body else None
        if 'replicationConfiguration' in body:
            raise bad_request('b2model does not model replication')
        return self.sim.create_bucket(
            API, token, account_id, name, bucket_type,
            bucket_info=body.get('bucketInfo'), cors_rules=body.get('corsRules'),
            lifecycle_rules=rules, default_server_side_encryption=sse,
            is_file_lock_enabled=lock,
        )

    def update_bucket(self, version, headers, body):
        token, key = self.session(headers)
        self.account(key, body)
        bucket = self.bucket_by_id(body.get('bucketId'))
        # RawSimulator.update_bucket checks writeBuckets, then asserts that some field other
        # than defaultRetention changed (so a retention-only update would crash); the model
        # itself is BucketSimulator._update_bucket, called after the same check.
        self.check(token, key, 'writeBuckets', bucket=bucket)
        kwargs = {}
        if 'bucketType' in body:
            if body['bucketType'] not in ('allPrivate', 'allPublic'):
                raise bad_request('bucketType must be allPrivate or allPublic')
            kwargs['bucket_type'] = body['bucketType']
        for field, arg in (('bucketInfo', 'bucket_info'), ('corsRules', 'cors_rules')):
            if field in body:
                kwargs[arg] = body[field]
        if 'lifecycleRules' in body:
            kwargs['lifecycle_rules'] = self.lifecycle_rules(body)
        if 'ifRevisionIs' in body:
            kwargs['if_revision_is'] = body['ifRevisionIs']
        if 'defaultServerSideEncryption' in body:
            # ADDITION (b2_update_bucket doc): needs writeBucketEncryption.
            self.check(token, key, 'writeBucketEncryption', bucket=bucket)
            kwargs['default_server_side_encryption'] = self.bucket_encryption(body)
        lock = body.get('fileLockEnabled')
        if lock is not None:
            if not isinstance(lock, bool):
                raise bad_request('fileLockEnabled must be a boolean')
            # ADDITION (b2_update_bucket doc): needs writeBucketRetentions.
            self.check(token, key, 'writeBucketRetentions', bucket=bucket)
            kwargs['is_file_lock_enabled'] = lock
        if 'defaultRetention' in body:
            # ADDITION (b2_update_bucket doc): "Setting the value requires the
            # writeBucketRetentions capability and that the bucket is File Lock-enabled."
            self.check(token, key, 'writeBucketRetentions', bucket=bucket)
            if not (bucket.is_file_lock_enabled or lock):
                raise bad_request('defaultRetention requires a File Lock-enabled bucket')
            kwargs['default_retention'] = self.bucket_retention(body['defaultRetention'])
        if 'replicationConfiguration' in body:
            raise bad_request('b2model does not model replication')
        if not kwargs:
            raise bad_request('nothing to update')
        bucket._update_bucket(**kwargs)
        # _update_bucket renders the bucket for the last token issued; render it for the
        # caller's key instead (the capability-gated fields depend on it).
        return bucket.bucket_dict(token)

    @staticmethod
    def bucket_encryption(body) -> b2.EncryptionSetting:
        value = body.get('defaultServerSideEncryption')
        if not isinstance(value, dict):
            raise bad_request('defaultServerSideEncryption must be an object')
        mode = value.get('mode')
        if mode is None:
            # REFERENCE §1.3 / Backblaze's 2026 SSE note: a null mode means the default,
            # SSE-B2 (AES256).
            return b2.SSE_B2_AES
        try:
            algorithm = value.get('algorithm')
            setting = b2.EncryptionSetting(
                b2.EncryptionMode(mode),
                b2.EncryptionAlgorithm(algorithm) if algorithm is not None else None,
            )
        except ValueError as error:
            raise bad_request(f'invalid defaultServerSideEncryption: {error}') from None
        # RawSimulator's own rule (create_bucket / update_bucket): only SSE-B2 can be a
        # bucket default (b2sdk BUCKET_DEFAULT_ENCRYPTION_MODES).
        if not setting.mode.can_be_set_as_bucket_default():
            raise from_b2sdk(b2exc.WrongEncryptionModeForBucketDefault(setting.mode))
        return setting

    @staticmethod
    def bucket_retention(value) -> b2.BucketRetentionSetting:
        if not isinstance(value, dict) or 'mode' not in value:
            raise bad_request('defaultRetention must be {"mode": ..., "period": ...}')
        mode, period = value.get('mode'), value.get('period')
        if mode is None:
            if period is not None:
                raise bad_request('defaultRetention: a period needs a mode')
            return b2.BucketRetentionSetting(b2.RetentionMode.NONE)
        if mode not in ('compliance', 'governance'):
            raise bad_request(f'defaultRetention: unknown mode {mode!r}')
        if not isinstance(period, dict):
            raise bad_request(f'defaultRetention: mode {mode} needs a period')
        duration, unit = period.get('duration'), period.get('unit')
        if (
            not isinstance(duration, int)
            or isinstance(duration, bool)
            or unit not in b2.RetentionPeriod.KNOWN_UNITS
            or duration < 1
            or duration * (365 if unit == 'years' else 1) > MAX_RETENTION_DAYS
        ):
            # ADDITION (Object Lock doc): 1 to 3,000 days, unit days or years.
            raise bad_request(f'defaultRetention: invalid period {period!r}')
        return b2.BucketRetentionSetting(
            b2.RetentionMode(mode), b2.RetentionPeriod(**{unit: duration})
        )

    @staticmethod
    def lifecycle_rules(body) -> list:
        rules = body.get('lifecycleRules')
        if not isinstance(rules, list) or len(rules) > 100:
            raise bad_request('lifecycleRules must be a list of at most 100 rules')
        prefixes = []
        day_fields = (
            'daysFromHidingToDeleting',
            'daysFromUploadingToHiding',
            'daysFromStartingToCancelingUnfinishedLargeFiles',
        )
        for rule in rules:
            # ADDITION (lifecycle rules doc): a prefix string, day counts null or positive,
            # not all null, and no rule's prefix may be a prefix of another's.
            if not isinstance(rule, dict) or not isinstance(rule.get('fileNamePrefix'), str):
                raise bad_request('each lifecycle rule needs a fileNamePrefix string')
            unknown = set(rule) - {'fileNamePrefix', *day_fields}
            if unknown:
                raise bad_request(f'unknown lifecycle rule fields: {sorted(unknown)}')
            days = [rule.get(f) for f in day_fields]
            for value in days:
                if value is not None and (
                    not isinstance(value, int) or isinstance(value, bool) or value < 1
                ):
                    raise bad_request(f'lifecycle day counts must be positive integers: {rule}')
            if all(v is None for v in days):
                raise bad_request(f'a lifecycle rule needs at least one day count: {rule}')
            prefix = rule['fileNamePrefix']
            for other in prefixes:
                if prefix.startswith(other) or other.startswith(prefix):
                    raise bad_request(f'lifecycle rules overlap: {other!r} and {prefix!r}')
            prefixes.append(prefix)
        return rules

    # --- keys ----------------------------------------------------------------------------

    def create_key(self, version, headers, body):
        token, key = self.session(headers)
        account_id = self.account(key, body)
        if version == 4:
            bucket_ids = body.get('bucketIds')
            if bucket_ids is not None and (
                not isinstance(bucket_ids, list)
                or not bucket_ids
                or not all(isinstance(b, str) for b in bucket_ids)
            ):
                raise bad_request('bucketIds must be null or a non-empty list of bucket ids')
        else:
            if 'bucketIds' in body:
                raise bad_request(f'bucketIds is not supported on API version number {version}')
            bucket_id = body.get('bucketId')
            bucket_ids = None if bucket_id is None else [bucket_id]
            if body.get('namePrefix') is not None and bucket_id is None:
                # b2_create_key v3 doc: "You must set bucketId when setting this."
                raise bad_request('namePrefix requires bucketId')
        capabilities = body.get('capabilities')
        if not isinstance(capabilities, list) or not capabilities:
            raise bad_request('capabilities must be a non-empty list')
        unknown = [c for c in capabilities if c not in b2.ALL_CAPABILITIES]
        if unknown:
            raise bad_request(f'unknown capabilities: {unknown}')
        key_name = body.get('keyName')
        if not isinstance(key_name, str):
            raise bad_request('required field keyName is missing')
        created = self.sim.create_key(
            API, token, account_id, capabilities, key_name,
            body.get('validDurationInSeconds'), bucket_ids, body.get('namePrefix'),
        )
        if version == 4 and bucket_ids is not None:
            self.multi_bucket_keys.add(created['applicationKeyId'])
        return self.key_json(version, created)

    @staticmethod
    def key_json(version, key_dict):
        if version == 4:
            return key_dict
        out = dict(key_dict)
        ids = out.pop('bucketIds', None)
        out['bucketId'] = ids[0] if ids else None
        return out

    def list_keys(self, version, headers, body):
        token, key = self.session(headers)
        account_id = self.account(key, body)
        self.check(token, key, 'listKeys')
        limit = body.get('maxKeyCount', 100)
        if not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise bad_request('maxKeyCount must be 1 to 10000')
        start = body.get('startApplicationKeyId') or ''
        everything = self.sim.list_keys(API, token, account_id, max_key_count=10**9)['keys']
        # ADDITION (b2_list_keys doc): v4 lists only Multi-Bucket Application Keys,
        # v1-v3 only the others.
        keys = [
            k for k in everything
            if (k['applicationKeyId'] in self.multi_bucket_keys) == (version == 4)
            and k['applicationKeyId'] >= start
        ]
        page, rest = keys[:limit], keys[limit:]
        return {
            'keys': [self.key_json(version, k) for k in page],
            'nextApplicationKeyId': rest[0]['applicationKeyId'] if rest else None,
        }

    def delete_key(self, version, headers, body):
        token, key = self.session(headers)
        # ADDITION: RawSimulator.delete_key checks no capability; B2 needs deleteKeys.
        self.check(token, key, 'deleteKeys')
        key_id = body.get('applicationKeyId')
        target = self.sim.key_id_to_key.get(key_id)
        if target is None or target.account_id != key.account_id or target.name == 'master':
            raise bad_request(f'application key does not exist: {key_id}')
        # ADDITION (b2_delete_key doc): a Multi-Bucket key can be deleted only through v4,
        # and v4 b2_delete_key works only with Multi-Bucket keys.
        if (key_id in self.multi_bucket_keys) != (version == 4):
            raise bad_request(
                f'This request is not currently supported on API version number {version}'
            )
        deleted = self.sim.delete_key(API, token, key_id)
        self.multi_bucket_keys.discard(key_id)
        return self.key_json(version, deleted)

    # --- files -------------------------------------------------------------------------

    def list_file_names(self, version, headers, body):
        token, key = self.session(headers)
        bucket = self.bucket_by_id(body.get('bucketId'))
        count = body.get('maxFileCount', 100)
        if not isinstance(count, int) or isinstance(count, bool):
            raise bad_request('maxFileCount must be an integer')
        if not 1 <= count <= MAX_LIST_FILE_COUNT:
            # ADDITION (b2_list_file_names doc): at most 10000.
            raise ApiError(400, 'out_of_range', 'maxFileCount out of range')
        if body.get('delimiter') is not None:
            raise bad_request('b2model does not model delimiter (RawSimulator lacks it)')
        prefix = body.get('prefix') or ''
        start = body.get('startFileName') or ''
        self.check(token, key, 'listFiles', bucket=bucket, file_name=prefix or None)
        # RawSimulator stops at the first name outside the prefix and asserts that the start
        # is inside it: start at the prefix, which B2 does implicitly.
        start = max(start, prefix)
        if not start.startswith(prefix):
            return {'files': [], 'nextFileName': None}
        return self.sim.list_file_names(
            API, token, bucket.bucket_id, start or None, count, prefix or None
        )

    def list_file_versions(self, version, headers, body):
        token, key = self.session(headers)
        bucket = self.bucket_by_id(body.get('bucketId'))
        count = body.get('maxFileCount', 100)
        if not isinstance(count, int) or not 1 <= count <= MAX_LIST_FILE_COUNT:
            raise ApiError(400, 'out_of_range', 'maxFileCount out of range')
        prefix = body.get('prefix') or ''
        self.check(token, key, 'listFiles', bucket=bucket, file_name=prefix or None)
        start = max(body.get('startFileName') or '', prefix)
        if not start.startswith(prefix):
            return {'files': [], 'nextFileName': None, 'nextFileId': None}
        return self.sim.list_file_versions(
            API, token, bucket.bucket_id, start or None, body.get('startFileId'), count,
            prefix or None,
        )

    def get_upload_url(self, version, headers, body):
        token, key = self.session(headers)
        bucket = self.bucket_by_id(body.get('bucketId'))
        self.check(token, key, 'writeFiles', bucket=bucket)
        sim_reply = self.sim.get_upload_url(API, token, bucket.bucket_id)
        self.upload_counter += 1
        upload_token = f'upload_{self.upload_counter}_{os.urandom(8).hex()}'
        self.upload_tokens[upload_token] = sim_reply['uploadUrl']
        return {
            'bucketId': bucket.bucket_id,
            'uploadUrl': f'{self.base}/b2api/v{version}/b2_upload_file/{bucket.bucket_id}/'
            f'{self.upload_counter}',
            'authorizationToken': upload_token,
        }

    def upload_file(self, headers, data: bytes):
        upload_token = headers.get('Authorization') or ''
        sim_url = self.upload_tokens.get(upload_token)
        if sim_url is None:
            raise ApiError(401, 'bad_auth_token', 'Invalid upload authorization token')
        account_token = sim_url.rsplit('/', 1)[-1]
        if account_token in self.sim.expired_auth_tokens:
            raise ApiError(401, 'expired_auth_token', 'Authorization token has expired')
        key = self.sim.auth_token_to_key[account_token]
        bucket = self.sim._get_bucket_by_id(sim_url.split('/')[3])
        name = unquote(headers.get('X-Bz-File-Name') or '')
        if not name:
            raise bad_request('X-Bz-File-Name is required')
        sha1 = (headers.get('X-Bz-Content-Sha1') or '').lower()
        if sha1 == 'do_not_verify':
            sha1 = hashlib.sha1(data).hexdigest()
        elif sha1 != 'hex_digits_at_end' and (
            len(sha1) != 40 or any(c not in '0123456789abcdef' for c in sha1)
        ):
            raise bad_request('X-Bz-Content-Sha1 must be 40 hex digits')
        info = {
            k[len('X-Bz-Info-'):]: unquote(v)
            for k, v in headers.items()
            if k.lower().startswith('x-bz-info-')
        }
        sse = None
        if 'X-Bz-Server-Side-Encryption' in headers:
            try:
                sse = b2.EncryptionSetting(
                    b2.EncryptionMode.SSE_B2,
                    b2.EncryptionAlgorithm(headers['X-Bz-Server-Side-Encryption']),
                )
            except ValueError:
                raise bad_request('X-Bz-Server-Side-Encryption must be AES256') from None
        retention = None
        mode = headers.get('X-Bz-File-Retention-Mode')
        if mode is not None:
            # ADDITION (b2_upload_file doc): retention headers need writeFileRetentions and
            # a File Lock-enabled bucket.
            self.check(account_token, key, 'writeFileRetentions', bucket=bucket)
            if not bucket.is_file_lock_enabled:
                raise bad_request('file retention requires a File Lock-enabled bucket')
            retention = self.file_retention(
                {'mode': mode, 'retainUntilTimestamp': headers.get(
                    'X-Bz-File-Retention-Retain-Until-Timestamp')}
            )
        stamp = now_millis()
        if retention is None:
            retention = self.default_file_retention(bucket, stamp)
        reply = self.sim.upload_file(
            sim_url, sim_url, name, len(data), headers.get('Content-Type') or 'b2/x-auto',
            sha1, info, io.BytesIO(data), server_side_encryption=sse,
            file_retention=retention, custom_upload_timestamp=stamp,
        )
        return self.render_file(bucket, reply['fileId'], account_token)

    @staticmethod
    def default_file_retention(bucket, upload_millis):
        """ADDITION (Object Lock doc, "Default Bucket Retention"): files uploaded to a bucket
        with a default retention get it, counted from the upload. RawSimulator stores the
        default but never applies it."""
        default = bucket.default_retention
        if not bucket.is_file_lock_enabled or default.mode in (None, b2.RetentionMode.NONE):
            return None
        return b2.FileRetentionSetting(
            default.mode, upload_millis + retention_millis(default.period)
        )

    @staticmethod
    def file_retention(value) -> b2.FileRetentionSetting:
        if not isinstance(value, dict):
            raise bad_request('fileRetention must be an object')
        mode = value.get('mode')
        until = value.get('retainUntilTimestamp')
        if mode is None:
            return b2.FileRetentionSetting(b2.RetentionMode.NONE)
        if mode not in ('compliance', 'governance'):
            raise bad_request(f'unknown retention mode {mode!r}')
        try:
            until = int(until)
        except (TypeError, ValueError):
            raise bad_request('retainUntilTimestamp must be a timestamp in milliseconds') from None
        if until <= now_millis():
            raise bad_request('retainUntilTimestamp must be in the future')
        return b2.FileRetentionSetting(b2.RetentionMode(mode), until)

    def render_file(self, bucket, file_id, token):
        return bucket.file_id_to_file[file_id].as_upload_result(token)

    def file_by_id(self, body):
        file_id = body.get('fileId')
        bucket_id = self.sim.file_id_to_bucket_id.get(file_id)
        if bucket_id is None:
            raise ApiError(400, 'bad_request', f'Invalid fileId: {file_id}')
        bucket = self.sim._get_bucket_by_id(bucket_id)
        file = bucket.file_id_to_file.get(file_id)
        if file is None or file.name != body.get('fileName'):
            raise ApiError(400, 'file_not_present', f'File not present: {file_id}')
        return bucket, file

    def update_file_retention(self, version, headers, body):
        token, key = self.session(headers)
        bucket, file = self.file_by_id(body)
        self.check(token, key, 'writeFileRetentions', bucket=bucket,
                   file_name=file.name)
        if not bucket.is_file_lock_enabled:
            raise bad_request('file retention requires a File Lock-enabled bucket')
        new = self.file_retention(body.get('fileRetention'))
        old = file.file_retention
        bypass = body.get('bypassGovernance') is True
        if old is not None and old.mode in (b2.RetentionMode.COMPLIANCE,
                                            b2.RetentionMode.GOVERNANCE):
            active = old.retain_until is not None and old.retain_until > now_millis()
            weaker = (
                new.mode is b2.RetentionMode.NONE
                or (new.retain_until or 0) < (old.retain_until or 0)
                or (old.mode is b2.RetentionMode.COMPLIANCE
                    and new.mode is b2.RetentionMode.GOVERNANCE)
            )
            # ADDITION (b2_update_file_retention doc; RawSimulator has "TODO: check bypass"):
            # compliance can only be extended; governance can be weakened only with
            # bypassGovernance and that capability. B2 answers 403 access_denied (b2sdk
            # maps it to RetentionWriteError).
            if active and weaker:
                if old.mode is b2.RetentionMode.COMPLIANCE:
                    raise ApiError(403, 'access_denied',
                                   'compliance-mode retention can only be extended')
                if not bypass:
                    raise ApiError(403, 'access_denied',
                                   'governance-mode retention needs bypassGovernance')
                self.check(token, key, 'bypassGovernance', bucket=bucket)
        return bucket.update_file_retention(token, file.file_id, file.name, new, bypass)

    def delete_file_version(self, version, headers, body):
        token, key = self.session(headers)
        bucket, file = self.file_by_id(body)
        self.check(token, key, 'deleteFiles', bucket=bucket, file_name=file.name)
        retention = file.file_retention
        if retention is not None and retention.retain_until is not None \
                and retention.retain_until > now_millis():
            # RawSimulator compares the millisecond timestamp with seconds; decide here
            # with the same rule in milliseconds, then let it apply its own.
            bypass = body.get('bypassGovernance') is True
            if retention.mode is b2.RetentionMode.COMPLIANCE or not bypass:
                raise ApiError(403, 'access_denied', 'file is protected by Object Lock')
            self.check(token, key, 'bypassGovernance', bucket=bucket)
        if file.legal_hold is not None and file.legal_hold.is_on():
            raise ApiError(403, 'access_denied', 'file is under legal hold')
        reply = bucket.delete_file_version(token, file.file_id, file.name, True)
        self.sim.file_id_to_bucket_id.pop(file.file_id, None)
        return reply

    def hide_file(self, version, headers, body):
        token, key = self.session(headers)
        bucket = self.bucket_by_id(body.get('bucketId'))
        name = body.get('fileName')
        self.check(token, key, 'writeFiles', bucket=bucket, file_name=name)
        reply = bucket.hide_file(token, name)
        self.sim.file_id_to_bucket_id[reply['fileId']] = bucket.bucket_id
        return reply

    # --- downloads ---------------------------------------------------------------------

    def download(self, headers, bucket_name, file_name):
        bucket = self.sim.bucket_name_to_bucket.get(bucket_name)
        token = headers.get('Authorization')
        if bucket is None:
            raise ApiError(404, 'not_found', f'Bucket does not exist: {bucket_name}')
        if bucket.bucket_type != 'allPublic' or token:
            # ADDITION: RawSimulator has "TODO: check auth token if bucket is not public";
            # a private bucket needs a token with readFiles for this bucket and name.
            token, key = self.session(headers)
            self.check(token, key, 'readFiles', bucket=bucket, file_name=file_name)
        files = bucket.list_file_names(token, file_name, 1, None)['files']
        if not files or files[0]['fileName'] != file_name:
            raise ApiError(404, 'not_found', f'File not present: {file_name}')
        file = bucket.file_id_to_file[files[0]['fileId']]
        total = len(file.data_bytes)
        span = None
        raw_range = headers.get('Range')
        if raw_range:
            span = parse_range(raw_range, total)
        # The simulator's Content-Range maths assumes the end is inside the file: clamp it
        # (RFC 9110 §14.1.2) before asking it.
        download_headers = file.as_download_headers(token, span)
        body = file.data_bytes if span is None else file.data_bytes[span[0]:span[1] + 1]
        return (206 if span else 200), dict(download_headers), body


def parse_range(header: str, total: int):
    """One ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range, clamped; 416 past the end."""
    spec = header.strip()
    if not spec.startswith('bytes=') or ',' in spec:
        return None  # not a single byte range: whole file (RFC 9110 allows ignoring)
    first, _, last = spec[6:].partition('-')
    try:
        if first == '':
            length = int(last)
            start, end = max(total - length, 0), total - 1
        else:
            start = int(first)
            end = int(last) if last else total - 1
    except ValueError:
        return None
    if start >= total or end < start:
        raise ApiError(416, 'range_not_satisfiable', f'Range {header} not satisfiable')
    return start, min(end, total - 1)


class Control:
    """The test-control side (``/_model/...``): state the real B2 would have, set directly."""

    def __init__(self, model: Model):
        self.model = model

    def accounts(self, body):
        account_id, master_key = self.model.sim.create_account()
        return {'accountId': account_id, 'applicationKeyId': account_id,
                'applicationKey': master_key}

    def files(self, body):
        """Plant a file version through BucketSimulator.upload_file (Backblaze's code path),
        bypassing keys: e.g. objects written before SSE or retention were turned on."""
        sim = self.model.sim
        bucket = sim.bucket_name_to_bucket.get(body.get('bucketName'))
        if bucket is None:
            raise bad_request(f"no bucket {body.get('bucketName')!r}")
        name = body.get('fileName')
        if not isinstance(name, str) or not name:
            raise bad_request('fileName is required')
        data = base64.b64decode(body.get('contentBase64') or '')
        sse_mode = body.get('sse', 'default')
        if sse_mode == 'default':
            sse = None
        elif sse_mode == 'none':
            sse = b2.SSE_NONE
        elif sse_mode == 'SSE-B2':
            sse = b2.SSE_B2_AES
        else:
            raise bad_request(f'sse must be "default", "none" or "SSE-B2": {sse_mode!r}')
        stamp = body.get('uploadTimestamp') or now_millis()
        if 'retention' in body:
            retention = (
                None if body['retention'] is None
                else b2.FileRetentionSetting(
                    b2.RetentionMode(body['retention']['mode']),
                    body['retention'].get('retainUntilTimestamp'),
                )
            )
        else:
            retention = Model.default_file_retention(bucket, stamp)
        reply = bucket.upload_file(
            'control', self.account_token(bucket.account_id), name, len(data), body.get('contentType') or 'b2/x-auto',
            hashlib.sha1(data).hexdigest(), body.get('fileInfo') or {}, io.BytesIO(data),
            server_side_encryption=sse, file_retention=retention,
            custom_upload_timestamp=stamp,
        )
        sim.file_id_to_bucket_id[reply['fileId']] = bucket.bucket_id
        return {'fileId': reply['fileId'], 'fileName': name, 'contentLength': len(data)}

    def account_token(self, account_id):
        """A token of the account's master key, for rendering what the control planted."""
        sim = self.model.sim
        for token, key in sim.auth_token_to_key.items():
            if key.application_key_id == account_id and token not in sim.expired_auth_tokens:
                return token
        master = sim.key_id_to_key[account_id]
        return sim.authorize_account(API, account_id, master.key)['authorizationToken']

    def bucket_state(self, body):
        bucket = self.model.sim.bucket_name_to_bucket.get(body.get('bucketName'))
        if bucket is None:
            raise bad_request(f"no bucket {body.get('bucketName')!r}")
        if 'defaultServerSideEncryption' in body:
            # Buckets made before Backblaze's 2026 SSE-by-default change can still say
            # "none"; the API no longer lets anyone set it.
            mode = body['defaultServerSideEncryption']
            if mode == 'none':
                bucket.default_server_side_encryption = b2.SSE_NONE
            elif mode == 'SSE-B2':
                bucket.default_server_side_encryption = b2.SSE_B2_AES
            else:
                raise bad_request('defaultServerSideEncryption must be "none" or "SSE-B2"')
            bucket.revision += 1
        return {'bucketName': bucket.bucket_name, 'revision': bucket.revision}

    def expire_tokens(self, body):
        sim = self.model.sim
        key_id = body.get('applicationKeyId')
        expired = 0
        for token, key in list(sim.auth_token_to_key.items()):
            if key_id is None or key.application_key_id == key_id:
                if token not in sim.expired_auth_tokens:
                    sim.expire_auth_token(token)
                    expired += 1
        return {'expired': expired}


def parse_version(segment: str) -> int | None:
    if len(segment) == 2 and segment[0] == 'v' and segment[1] in '1234':
        return int(segment[1])
    return None


CALLS = {
    'b2_list_buckets': Model.list_buckets,
    'b2_create_bucket': Model.create_bucket,
    'b2_update_bucket': Model.update_bucket,
    'b2_create_key': Model.create_key,
    'b2_list_keys': Model.list_keys,
    'b2_delete_key': Model.delete_key,
    'b2_list_file_names': Model.list_file_names,
    'b2_list_file_versions': Model.list_file_versions,
    'b2_get_upload_url': Model.get_upload_url,
    'b2_update_file_retention': Model.update_file_retention,
    'b2_delete_file_version': Model.delete_file_version,
    'b2_hide_file': Model.hide_file,
}
INT_PARAMS = {'maxFileCount', 'maxKeyCount', 'validDurationInSeconds', 'ifRevisionIs'}
JSON_PARAMS = {'bucketTypes', 'capabilities', 'bucketIds', 'lifecycleRules', 'fileRetention',
               'defaultRetention', 'defaultServerSideEncryption', 'bucketInfo', 'corsRules'}


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'b2model'
    model: Model
    control: Control

    def log_message(self, fmt, *args):  # quiet: tests read the ready line only
        pass

    def do_GET(self):
        self.handle_any('GET')

    def do_POST(self):
        self.handle_any('POST')

    def do_HEAD(self):
        self.handle_any('HEAD')

    def handle_any(self, method):
        url = urlsplit(self.path)
        status = 500
        try:
            length = int(self.headers.get('Content-Length') or 0)
            if length > MAX_BODY:
                raise bad_request('body too large for b2model')
            data = self.rfile.read(length) if length else b''
            with self.model.lock:
                status, headers, body = self.route(method, url, data)
        except ApiError as error:
            status, headers, body = error_reply(error)
        except Exception as error:  # noqa: BLE001 - every failure becomes a B2 error reply
            status, headers, body = error_reply(from_b2sdk(error))
        with self.model.lock:
            self.model.requests.append({'method': method, 'path': url.path, 'status': status})
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != 'content-length':
                self.send_header(name, value)
        # HEAD: the length GET would send, no body.
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if method != 'HEAD':
            self.wfile.write(body)

    def route(self, method, url, data):
        parts = url.path.split('/')
        if url.path.startswith('/_model/'):
            return self.route_control(method, parts[2], data)
        if len(parts) >= 3 and parts[1] == 'file':
            if method not in ('GET', 'HEAD'):
                raise ApiError(405, 'method_not_allowed', 'downloads are GET or HEAD')
            bucket_name = unquote(parts[2])
            file_name = unquote('/'.join(parts[3:]))
            return self.model.download(self.headers, bucket_name, file_name)
        if len(parts) >= 4 and parts[1] == 'b2api' and parse_version(parts[2]):
            version = parse_version(parts[2])
            call = parts[3]
            if call == 'b2_authorize_account':
                return json_reply(200, self.model.authorize(version, self.headers))
            if call == 'b2_upload_file' and method == 'POST':
                return json_reply(200, self.model.upload_file(self.headers, data))
            handler = CALLS.get(call)
            if handler is not None:
                body = self.params(method, url, data)
                return json_reply(200, handler(self.model, version, self.headers, body))
        raise ApiError(404, 'not_found', f'b2model does not serve {method} {url.path}')

    @staticmethod
    def params(method, url, data):
        if method == 'POST':
            try:
                body = json.loads(data or b'{}')
            except ValueError:
                raise bad_request('body is not JSON') from None
            if not isinstance(body, dict):
                raise bad_request('body must be a JSON object')
            return body
        params = {}
        for name, values in parse_qs(url.query).items():
            value = values[-1]
            try:
                if name in INT_PARAMS:
                    value = int(value)
                elif name in JSON_PARAMS:
                    value = json.loads(value)
                elif name == 'bypassGovernance' or name == 'fileLockEnabled':
                    value = value == 'true'
            except ValueError:
                raise bad_request(f'bad query parameter {name}') from None
            params[name] = value
        return params

    def route_control(self, method, name, data):
        if name == 'requests' and method == 'GET':
            return json_reply(200, {'requests': list(self.model.requests)})
        body = json.loads(data or b'{}')
        actions = {
            'accounts': self.control.accounts,
            'files': self.control.files,
            'bucket-state': self.control.bucket_state,
            'expire-tokens': self.control.expire_tokens,
        }
        if method != 'POST' or name not in actions:
            raise ApiError(404, 'not_found', f'no control endpoint {method} /_model/{name}')
        return json_reply(200, actions[name](body))


def json_reply(status, value):
    body = json.dumps(value, default=serialise).encode()
    return status, {'Content-Type': 'application/json'}, body


def serialise(value):
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f'cannot serialise {type(value).__name__}')


def error_reply(error: ApiError):
    return json_reply(error.status, {'status': error.status, 'code': error.code,
                                     'message': error.message})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, default=0, help='loopback port (0: any free one)')
    args = parser.parse_args()
    if b2sdk.version.VERSION != PINNED_B2SDK:
        sys.stderr.write(
            f'b2model: b2sdk {b2sdk.version.VERSION} installed, {PINNED_B2SDK} pinned; '
            'reinstall from tests/b2model/requirements.txt\n'
        )
        return 2
    model = Model()
    Handler.model = model
    Handler.control = Control(model)
    server = ThreadingHTTPServer(('127.0.0.1', args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    model.base = f'http://127.0.0.1:{port}'
    account_id, master_key = model.sim.create_account()
    ready = {
        'b2model': 'ready',
        'port': port,
        'apiUrl': model.base,
        'controlUrl': f'{model.base}/_model',
        'accountId': account_id,
        'adminKeyId': account_id,
        'adminKey': master_key,
        'b2sdk': b2sdk.version.VERSION,
    }

    def exit_when_parent_goes():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=exit_when_parent_goes, daemon=True).start()
    sys.stdout.write(json.dumps(ready) + '\n')
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == '__main__':
    sys.exit(main())
