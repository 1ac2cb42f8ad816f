//! The simulator's own params schemas, per method and per TrueNAS version.
//!
//! Owns: [`method_params`] — for every method the simulator serves, the positional
//! params (name, type, required) exactly as `shared/truenas-api/<ver>/<method>.json`
//! describes them, plus the validators the JSON Schema cannot express (cron syntax,
//! `HH:MM` times, zettarepl naming schemas, SNMP patterns, the 1024-character string cap,
//! pydantic `gt 0` on 25.10 bandwidths) — and [`check_params`], which applies them with
//! the real attribute paths (first component = the param's name in the method signature).
//! Does not: run cross-field / state rules (credential exists, unique names, path under a
//! pool…): those are in `rules.rs`, run by the handlers after this passed.
//! Invariants: needs no file at run time (works where `shared/` is absent); every method
//! in `Method::ALL` available on a flavour has an entry; `tests/it/sim_schema.rs` proves
//! that what these schemas accept the JSON Schemas accept and what the JSON Schemas reject
//! these reject.
//! Limitations: credential providers other than B2 are checked for their fields and
//! types only; legacy numeric-string coercion is not reproduced (see `schema.rs`).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::schema::{
    self, Field, Issue, ObjTy, Style, Ty, b, checked, int, int_ge, int_gt, int_range, list, long_s,
    nullable, obj, one_of, opt, req, s, s_max, s_pattern, s1,
};
use truenas_agent::middleware::ApiFlavor;

/// One positional parameter.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
}

/// The params of one method on one version.
#[derive(Debug, Clone)]
pub struct MethodParams {
    /// Which validator family reports the errors.
    pub style: Style,
    pub params: Vec<Param>,
}

/// Why params were refused before the method ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsError {
    /// Schema violations (a `ValidationErrors`).
    Invalid(Vec<Issue>),
    /// Legacy methods refuse surplus params with a plain `CallError` (EFAULT).
    TooMany { expected: usize, found: usize },
}

/// Checks positional `params` of `method` on `flavor`. `None` from [`method_params`]
/// means the method does not exist there (the caller answers "method not found").
pub fn check_params(spec: &MethodParams, params: &[Value]) -> Result<(), ParamsError> {
    if params.len() > spec.params.len() {
        return match spec.style {
            // middleware: api/base/handler/accept.py `model_dict_from_list`
            Style::Pydantic => Err(ParamsError::Invalid(vec![Issue::new(
                "",
                format!(
                    "Too many arguments (expected {}, found {})",
                    spec.params.len(),
                    params.len()
                ),
            )])),
            // middleware: schema/processor.py `clean_and_validate_args`
            Style::Legacy => Err(ParamsError::TooMany {
                expected: spec.params.len(),
                found: params.len(),
            }),
        };
    }
    let mut issues = Vec::new();
    for (i, p) in spec.params.iter().enumerate() {
        match params.get(i) {
            Some(v) => schema::check(&p.ty, v, p.name, spec.style, &mut issues),
            None if p.required => issues.push(Issue::new(
                p.name,
                match spec.style {
                    Style::Pydantic => "Field required",
                    Style::Legacy => "attribute required",
                },
            )),
            None => {}
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ParamsError::Invalid(issues))
    }
}

/// The params spec of `method` on `flavor`, or `None` if the method does not exist there.
#[expect(
    clippy::too_many_lines,
    reason = "one flat table of every method is easiest to audit"
)]
#[expect(
    clippy::match_same_arms,
    reason = "arms are grouped by plugin, as in the middleware, not by shape"
)]
pub fn method_params(method: &str, flavor: ApiFlavor) -> Option<MethodParams> {
    use ApiFlavor::{V24_10, V25_04, V25_10, V26_0, V27_0};
    let legacy = |params| {
        Some(MethodParams {
            style: Style::Legacy,
            params,
        })
    };
    let pydantic = |params| {
        Some(MethodParams {
            style: Style::Pydantic,
            params,
        })
    };
    // 25.04 still serves these methods through the legacy schema (index.json `schema_source`).
    let mixed = |params| match flavor {
        V24_10 | V25_04 => legacy(params),
        V25_10 | V26_0 | V27_0 => pydantic(params),
    };
    // 24.10 is legacy everywhere except cloud credentials (pydantic models since 24.10).
    let modern = |params| match flavor {
        V24_10 => legacy(params),
        V25_04 | V25_10 | V26_0 | V27_0 => pydantic(params),
    };
    let id = |name| p_req(name, int());
    match (method, flavor) {
        // ---- auth ----
        // `removed_in='v27'`: private on the v27 API (`MW/plugins/auth.py`, master).
        ("auth.login_with_api_key", V24_10 | V25_04 | V25_10 | V26_0) => {
            modern(vec![p_req("api_key", s())])
        }
        ("auth.login_ex", V25_04 | V25_10 | V26_0 | V27_0) => {
            pydantic(vec![p_req("login_data", login_data(flavor))])
        }
        ("auth.me", _) => modern(vec![]),
        // ---- core ----
        ("core.ping", _) => modern(vec![]),
        ("core.get_jobs", V24_10 | V25_04) => legacy(query_params(flavor, true)),
        ("core.get_jobs", V25_10 | V26_0 | V27_0) => pydantic(query_params(flavor, false)),
        ("core.job_wait" | "core.job_abort", _) => mixed(vec![id("id")]),
        ("core.subscribe", V25_04 | V25_10 | V26_0 | V27_0) => pydantic(vec![p_req("event", s())]),
        ("core.unsubscribe", V25_04 | V25_10 | V26_0 | V27_0) => pydantic(vec![p_req("id_", s())]),
        ("core.set_options", V25_04) => pydantic(vec![p_req(
            "options",
            obj(vec![opt("py_exceptions", b())]).allow_extra().ty(),
        )]),
        ("core.set_options", V25_10 | V26_0 | V27_0) => pydantic(vec![p_req(
            "options",
            obj(vec![
                opt("legacy_jobs", b()),
                opt("private_methods", b()),
                opt("py_exceptions", b()),
            ])
            .allow_extra()
            .ty(),
        )]),
        // ---- cloud sync tasks ----
        ("cloudsync.query", V24_10) => legacy(query_params(flavor, true)),
        ("cloudsync.query", _) => pydantic(query_params(flavor, false)),
        ("cloudsync.create", _) => mixed(vec![p_req("cloud_sync_create", cloud_sync(flavor).ty())]),
        ("cloudsync.update", V24_10 | V25_04) => legacy(vec![
            id("id"),
            p_opt("cloud_sync_update", cloud_sync(flavor).partial().ty()),
        ]),
        ("cloudsync.update", V25_10 | V26_0 | V27_0) => pydantic(vec![
            id("id"),
            p_req("cloud_sync_update", cloud_sync(flavor).partial().ty()),
        ]),
        ("cloudsync.delete" | "cloudsync.abort", _) => mixed(vec![id("id")]),
        ("cloudsync.sync", _) => mixed(vec![
            id("id"),
            p_opt(
                "cloud_sync_sync_options",
                obj(vec![opt("dry_run", b())]).ty(),
            ),
        ]),
        ("cloudsync.list_buckets", _) => mixed(vec![id("credentials_id")]),
        ("cloudsync.list_directory", _) => {
            mixed(vec![p_req("cloud_sync_ls", list_directory(flavor))])
        }
        ("cloudsync.providers", _) => mixed(vec![]),
        // ---- cloud credentials ----
        ("cloudsync.credentials.query", _) => pydantic(query_params(flavor, false)),
        ("cloudsync.credentials.create", _) => pydantic(vec![p_req(
            "cloud_sync_credentials_create",
            credential(flavor).ty(),
        )]),
        ("cloudsync.credentials.update", _) => pydantic(vec![
            id("id"),
            p_req(
                "cloud_sync_credentials_update",
                credential(flavor).partial().ty(),
            ),
        ]),
        ("cloudsync.credentials.delete", _) => pydantic(vec![id("id")]),
        ("cloudsync.credentials.verify", V24_10) => pydantic(vec![p_req(
            "cloud_sync_credentials_create",
            obj(vec![
                req("provider", s()),
                req("attributes", Ty::Obj(ObjTy::default().allow_extra())),
            ])
            .ty(),
        )]),
        ("cloudsync.credentials.verify", _) => pydantic(vec![p_req(
            "cloud_sync_credentials_create",
            providers(flavor),
        )]),
        // ---- periodic snapshot tasks ----
        ("pool.snapshottask.query", V24_10) => legacy(query_params(flavor, true)),
        ("pool.snapshottask.query", _) => pydantic(query_params(flavor, false)),
        ("pool.snapshottask.create", V24_10) => legacy(vec![p_req(
            "periodic_snapshot_create",
            snapshot_task(flavor).ty(),
        )]),
        ("pool.snapshottask.create", _) => {
            pydantic(vec![p_req("data", snapshot_task(flavor).ty())])
        }
        ("pool.snapshottask.update", V24_10) => legacy(vec![
            id("id"),
            p_opt("periodic_snapshot_update", snapshot_update(flavor)),
        ]),
        ("pool.snapshottask.update", _) => {
            pydantic(vec![id("id"), p_req("data", snapshot_update(flavor))])
        }
        ("pool.snapshottask.delete", _) => modern(vec![
            id("id"),
            p_opt("options", obj(vec![opt("fixate_removal_date", b())]).ty()),
        ]),
        ("pool.snapshottask.run", _) => modern(vec![id("id")]),
        // ---- SNMP and services ----
        ("snmp.config", _) => modern(vec![]),
        ("snmp.update", V24_10) => legacy(vec![p_opt("snmp_update", snmp_update(flavor))]),
        // 26.0: every field optional, so `single_argument_args` makes the param optional;
        // 27.0 requires it again (`MW/api/v27_0_0/snmp.py` `SNMPUpdateArgs`).
        ("snmp.update", V26_0) => pydantic(vec![p_opt("snmp_update", snmp_update(flavor))]),
        ("snmp.update", V25_04 | V25_10 | V27_0) => {
            pydantic(vec![p_req("snmp_update", snmp_update(flavor))])
        }
        ("service.query", V24_10) => legacy(query_params(flavor, true)),
        ("service.query", _) => pydantic(query_params(flavor, false)),
        ("service.update", V24_10 | V25_04) => legacy(vec![
            p_req("id_or_name", s()),
            p_opt("service-update", obj(vec![opt("enable", b())]).ty()),
        ]),
        ("service.update", V25_10 | V26_0 | V27_0) => pydantic(vec![
            p_req("id_or_name", Ty::AnyOf(vec![int(), s()])),
            p_req("service_update", obj(vec![req("enable", b())]).ty()),
        ]),
        ("service.start", V24_10 | V25_04) => legacy(vec![
            p_req("service", s()),
            p_opt("service-control", service_options(false)),
        ]),
        ("service.start", V25_10) => pydantic(vec![
            p_req("service", s()),
            p_opt("options", service_options(true)),
        ]),
        // `service.start` is `@private` without a model from 26.0 on (`MW/plugins/service.py`).
        ("service.control", V25_10 | V26_0 | V27_0) => pydantic(vec![
            p_req("verb", one_of(&["START", "STOP", "RESTART", "RELOAD"])),
            p_req("service", s()),
            p_opt("options", service_options(true)),
        ]),
        // ---- pools, datasets, snapshots ----
        ("pool.query" | "pool.dataset.query", V24_10) => legacy(query_params(flavor, true)),
        ("pool.query" | "pool.dataset.query", _) => pydantic(query_params(flavor, false)),
        ("pool.dataset.update", V24_10 | V25_04) => legacy(vec![
            p_req("id", s()),
            p_opt("pool_dataset_update", dataset_update(flavor)),
        ]),
        ("pool.dataset.update", V25_10 | V26_0 | V27_0) => pydantic(vec![
            p_req("id", s()),
            p_req("data", dataset_update(flavor)),
        ]),
        // Not in shared/truenas-api (used by `install` only): the legacy create schema's keys.
        ("pool.dataset.create", _) => mixed(vec![p_req("pool_dataset_create", dataset_create())]),
        ("pool.dataset.snapshot_count", _) => modern(vec![p_req("dataset", s())]),
        ("zfs.snapshot.query", V24_10) => legacy(query_params(flavor, true)),
        ("zfs.snapshot.query", V25_04) => pydantic(query_params(flavor, false)),
        ("pool.snapshot.query", V25_10 | V26_0 | V27_0) => pydantic(query_params(flavor, false)),
        ("zfs.resource.query", V25_10 | V26_0 | V27_0) => {
            let mut fields = vec![
                opt("paths", list(s())),
                opt("properties", nullable(list(s()))),
                opt("get_user_properties", b()),
                opt("get_source", b()),
                opt("nest_results", b()),
                opt("get_children", b()),
            ];
            if flavor >= V26_0 {
                // `MW/api/v26_0_0/zfs_resource_crud.py`
                fields.extend([opt("max_depth", int()), opt("get_tier", b())]);
            }
            pydantic(vec![p_opt("data", obj(fields).ty())])
        }
        // New in 26.0 (`MW/plugins/zfs/snapshot_crud.py`).
        ("zfs.resource.snapshot.query", V26_0 | V27_0) => pydantic(vec![p_opt(
            "data",
            obj(vec![
                opt("paths", list(s())),
                opt("recursive", b()),
                opt("properties", nullable(list(s()))),
                opt("get_user_properties", b()),
                opt("get_source", b()),
                opt("get_holds", b()),
                opt("min_txg", int()),
                opt("max_txg", int()),
            ])
            .ty(),
        )]),
        ("zfs.resource.snapshot.count", V26_0 | V27_0) => pydantic(vec![p_opt(
            "data",
            obj(vec![opt("paths", list(s())), opt("recursive", b())]).ty(),
        )]),
        // ---- system, alerts ----
        ("system.info" | "system.host_id" | "system.version" | "system.version_short", _) => {
            mixed(vec![])
        }
        ("alert.list", _) => modern(vec![]),
        // ---- init/shutdown scripts ----
        ("initshutdownscript.query", V24_10) => legacy(query_params(flavor, true)),
        ("initshutdownscript.query", _) => pydantic(query_params(flavor, false)),
        ("initshutdownscript.create", V24_10) => legacy(vec![p_req(
            "init_shutdown_script_create",
            init_script(flavor).ty(),
        )]),
        ("initshutdownscript.create", _) => pydantic(vec![p_req("data", init_script(flavor).ty())]),
        ("initshutdownscript.update", V24_10) => legacy(vec![
            id("id"),
            p_opt(
                "initshutdownscript_update",
                init_script(flavor).partial().ty(),
            ),
        ]),
        ("initshutdownscript.update", _) => pydantic(vec![
            id("id"),
            p_req("data", init_script(flavor).partial().ty()),
        ]),
        ("initshutdownscript.delete", _) => modern(vec![id("id")]),
        _ => None,
    }
}

fn p_req(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: true,
    }
}

fn p_opt(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        required: false,
    }
}

// ---- shared shapes ----------------------------------------------------------------

/// `[filters, options]` of a query method. `legacy_filters`: the 24.10 (and 25.04
/// `core.get_jobs`) schema types filters as a list of lists.
fn query_params(flavor: ApiFlavor, legacy_filters: bool) -> Vec<Param> {
    let filters = if legacy_filters {
        list(list(Ty::Any))
    } else {
        list(Ty::Any)
    };
    let (order_by, select) = if legacy_filters {
        (list(Ty::Any), list(Ty::Any))
    } else {
        (list(s()), list(Ty::AnyOf(vec![s(), list(Ty::Any)])))
    };
    let mut fields = Vec::new();
    if flavor < ApiFlavor::V25_10 {
        fields.extend([
            opt("relationships", b()),
            opt("extend", nullable(s())),
            opt("extend_context", nullable(s())),
            opt("prefix", nullable(s())),
        ]);
    }
    fields.extend([
        opt("extra", Ty::Obj(ObjTy::default().allow_extra())),
        opt("order_by", order_by),
        opt("select", select),
        opt("count", b()),
        opt("get", b()),
    ]);
    if flavor >= ApiFlavor::V27_0 {
        // `MW/api/v27_0_0/common.py` `QueryOptions`: offset ≥ 0, limit 0…10000.
        fields.extend([opt("offset", int_ge(0)), opt("limit", int_range(0, 10_000))]);
    } else {
        fields.extend([opt("offset", int()), opt("limit", int())]);
    }
    fields.push(opt("force_sql_filters", b()));
    let (f, o) = if legacy_filters {
        ("query-filters", "query-options")
    } else {
        ("filters", "options")
    };
    vec![p_opt(f, filters), p_opt(o, obj(fields).ty())]
}

fn login_data(flavor: ApiFlavor) -> Ty {
    let options = || {
        let mut fields = vec![opt("user_info", b())];
        if flavor >= ApiFlavor::V26_0 {
            // `MW/api/v26_0_0/auth.py` `AuthCommonOptions`.
            fields.push(opt("reconnect_token", b()));
        }
        opt("login_options", obj(fields).ty())
    };
    let mech = |m: &'static str| req("mechanism", one_of(&[m]));
    let mut variants = vec![
        (
            "API_KEY_PLAIN",
            obj(vec![
                mech("API_KEY_PLAIN"),
                req("username", s()),
                req("api_key", s()),
                options(),
            ]),
        ),
        (
            "PASSWORD_PLAIN",
            obj(vec![
                mech("PASSWORD_PLAIN"),
                req("username", s()),
                req("password", s()),
                options(),
            ]),
        ),
        (
            "TOKEN_PLAIN",
            obj(vec![mech("TOKEN_PLAIN"), req("token", s()), options()]),
        ),
        (
            "OTP_TOKEN",
            obj(vec![mech("OTP_TOKEN"), req("otp_token", s()), options()]),
        ),
    ];
    if flavor >= ApiFlavor::V26_0 {
        // `MW/api/v26_0_0/auth.py` `AuthSCRAM` (API keys only, so far).
        variants.push((
            "SCRAM",
            obj(vec![
                mech("SCRAM"),
                req(
                    "scram_type",
                    one_of(&["CLIENT_FIRST_MESSAGE", "CLIENT_FINAL_MESSAGE"]),
                ),
                req("rfc_str", s()),
            ]),
        ));
    }
    Ty::Tagged {
        tag: "mechanism",
        variants,
    }
}

fn service_options(with_timeout: bool) -> Ty {
    let mut fields = vec![opt("ha_propagate", b()), opt("silent", b())];
    if with_timeout {
        fields.push(opt("timeout", nullable(int())));
    }
    obj(fields).ty()
}

// ---- cloud credentials -----------------------------------------------------------

fn credential(flavor: ApiFlavor) -> ObjTy {
    match flavor {
        ApiFlavor::V24_10 => obj(vec![
            req("name", s1()),
            req("provider", s()),
            req("attributes", Ty::Obj(ObjTy::default().allow_extra())),
        ]),
        ApiFlavor::V25_04 | ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => {
            obj(vec![req("name", s1()), req("provider", providers(flavor))])
        }
    }
}

/// The 25.04+ provider union (the `provider` of a credential), discriminated by `type`.
pub fn provider_ty(flavor: ApiFlavor) -> Ty {
    providers(flavor)
}

/// The 25.04+ provider union, discriminated by `type`.
#[expect(
    clippy::too_many_lines,
    reason = "one table of every provider's fields"
)]
fn providers(flavor: ApiFlavor) -> Ty {
    let t = |name: &'static str| req("type", one_of(&[name]));
    let oauth = |name: &'static str, extra: Vec<Field>| {
        let mut f = vec![
            t(name),
            opt("client_id", s()),
            opt("client_secret", s()),
            req("token", s1()),
        ];
        f.extend(extra);
        (name, obj(f))
    };
    let uri = || s_max(2083);
    let mut variants = vec![
        (
            "AZUREBLOB",
            obj(vec![
                t("AZUREBLOB"),
                req("account", s1()),
                req("key", s1()),
                opt("endpoint", uri()),
            ]),
        ),
        (
            "B2",
            obj(vec![t("B2"), req("account", s1()), req("key", s1())]),
        ),
        oauth("BOX", vec![]),
        oauth("DROPBOX", vec![]),
        (
            "FTP",
            obj(vec![
                t("FTP"),
                req("host", s1()),
                opt("port", int()),
                req("user", s1()),
                req("pass", s()),
            ]),
        ),
        (
            "GOOGLE_CLOUD_STORAGE",
            obj(vec![
                t("GOOGLE_CLOUD_STORAGE"),
                req("service_account_credentials", s1()),
            ]),
        ),
        oauth("GOOGLE_DRIVE", vec![opt("team_drive", s())]),
        oauth("GOOGLE_PHOTOS", vec![]),
        (
            "HTTP",
            obj(vec![
                t("HTTP"),
                req(
                    "url",
                    Ty::Str(schema::StrTy {
                        min_len: 1,
                        max_len: Some(2083),
                        pattern: None,
                    }),
                ),
            ]),
        ),
        ("HUBIC", obj(vec![t("HUBIC"), req("token", s1())])),
    ];
    if flavor >= ApiFlavor::V25_10 {
        variants.push((
            "MEGA",
            obj(vec![t("MEGA"), req("user", s1()), req("pass", s1())]),
        ));
    }
    let mut s3 = vec![
        t("S3"),
        req("access_key_id", s1()),
        req("secret_access_key", s1()),
        opt("endpoint", s()),
        opt("region", s()),
        opt("skip_region", b()),
        opt("signatures_v2", b()),
        opt("max_upload_parts", int()),
    ];
    if flavor >= ApiFlavor::V26_0 {
        // `MW/api/v26_0_0/cloud_sync_providers.py` `S3CredentialsModel`.
        s3.extend([
            opt("provider", s()),
            opt("force_path_style", b()),
            opt("sign_accept_encoding", b()),
        ]);
    }
    variants.extend([
        oauth(
            "ONEDRIVE",
            vec![
                req(
                    "drive_type",
                    one_of(&["PERSONAL", "BUSINESS", "DOCUMENT_LIBRARY"]),
                ),
                req("drive_id", s()),
            ],
        ),
        oauth("PCLOUD", vec![opt("hostname", s())]),
        ("S3", obj(s3)),
        (
            "SFTP",
            obj(vec![
                t("SFTP"),
                req("host", s1()),
                opt("port", int()),
                req("user", s1()),
                opt("pass", nullable(s())),
                opt("private_key", nullable(int())),
            ]),
        ),
        (
            "STORJ_IX",
            obj(vec![
                t("STORJ_IX"),
                req("access_key_id", s1()),
                req("secret_access_key", s1()),
                opt("endpoint", uri()),
            ]),
        ),
        ("OPENSTACK_SWIFT", swift()),
        (
            "WEBDAV",
            obj(vec![
                t("WEBDAV"),
                req("url", s1()),
                req(
                    "vendor",
                    one_of(&["NEXTCLOUD", "OWNCLOUD", "SHAREPOINT", "OTHER"]),
                ),
                req("user", s()),
                req("pass", s()),
            ]),
        ),
        oauth("YANDEX", vec![]),
    ]);
    Ty::Tagged {
        tag: "type",
        variants,
    }
}

fn swift() -> ObjTy {
    let mut f = vec![
        req("type", one_of(&["OPENSTACK_SWIFT"])),
        req("user", s1()),
        req("key", s1()),
        req("auth", s1()),
    ];
    for name in [
        "user_id",
        "domain",
        "tenant",
        "tenant_id",
        "tenant_domain",
        "region",
        "storage_url",
        "auth_token",
        "application_credential_id",
        "application_credential_name",
        "application_credential_secret",
    ] {
        f.push(opt(name, s()));
    }
    f.push(req(
        "auth_version",
        Ty::Enum(vec![0.into(), 1.into(), 2.into(), 3.into(), Value::Null]),
    ));
    f.push(req(
        "endpoint_type",
        Ty::Enum(vec![
            "public".into(),
            "internal".into(),
            "admin".into(),
            Value::Null,
        ]),
    ));
    obj(f)
}

// ---- cloud sync tasks ------------------------------------------------------------

/// The cloud sync create payload (all fields; `partial()` for updates).
fn cloud_sync(flavor: ApiFlavor) -> ObjTy {
    let v25_10 = flavor >= ApiFlavor::V25_10;
    // The legacy models take `Int(validators=[Range(min_=1)], null=True)`; 25.10 `PositiveInt | None`.
    let positive = || nullable(int_gt(0));
    let attributes = if v25_10 {
        task_attributes_25_10()
    } else {
        Ty::Obj(ObjTy::default().allow_extra())
    };
    let mut schedule = obj(vec![
        opt("minute", s()),
        opt("hour", s()),
        opt("dom", s()),
        opt("month", s()),
        opt("dow", s()),
    ])
    .with_check(cron_check);
    if !v25_10 {
        schedule.fields.iter_mut().for_each(|f| f.required = false);
    }
    obj(vec![
        opt("description", s()),
        req("path", s()),
        req("credentials", int()),
        req("attributes", attributes),
        Field {
            name: "schedule",
            ty: schedule.ty(),
            required: !v25_10,
        },
        opt("pre_script", long_s()),
        opt("post_script", long_s()),
        opt("snapshot", b()),
        opt("include", list(s1())),
        opt("exclude", list(s1())),
        opt("args", long_s()),
        opt("enabled", b()),
        opt(
            "bwlimit",
            list(
                obj(vec![
                    req("time", checked(s(), time_check)),
                    req("bandwidth", positive()),
                ])
                .ty(),
            ),
        ),
        opt("transfers", positive()),
        req("direction", one_of(&["PUSH", "PULL"])),
        req("transfer_mode", one_of(&["SYNC", "COPY", "MOVE"])),
        opt("encryption", b()),
        opt("filename_encryption", b()),
        opt("encryption_password", s()),
        opt("encryption_salt", s()),
        opt("create_empty_src_dirs", b()),
        opt("follow_symlinks", b()),
    ])
}

/// 25.10 `CloudTaskAttributes` (every provider's keys; `rules.rs` narrows to B2's).
fn task_attributes_25_10() -> Ty {
    obj(vec![
        opt("bucket", s1()),
        opt("folder", s()),
        opt("fast_list", b()),
        opt("bucket_policy_only", b()),
        opt("chunk_size", int()),
        opt("acknowledge_abuse", b()),
        opt("region", s()),
        opt("encryption", Ty::Enum(vec![Value::Null, "AES256".into()])),
        opt(
            "storage_class",
            one_of(&[
                "",
                "STANDARD",
                "REDUCED_REDUNDANCY",
                "STANDARD_IA",
                "ONEZONE_IA",
                "INTELLIGENT_TIERING",
                "GLACIER",
                "GLACIER_IR",
                "DEEP_ARCHIVE",
            ]),
        ),
    ])
    .ty()
}

fn list_directory(flavor: ApiFlavor) -> Ty {
    let attributes = if flavor >= ApiFlavor::V25_10 {
        task_attributes_25_10()
    } else {
        Ty::Obj(ObjTy::default().allow_extra())
    };
    obj(vec![
        req("credentials", int()),
        opt("encryption", b()),
        opt("filename_encryption", b()),
        opt("encryption_password", s()),
        opt("encryption_salt", s()),
        req("attributes", attributes),
        opt("args", long_s()),
    ])
    .ty()
}

/// B2 task attributes as the service validates them (REFERENCE §5.3): the keys and their
/// types; `chunk_size >= 5` and the defaults are applied in `rules.rs`.
pub fn b2_task_attributes() -> ObjTy {
    obj(vec![
        req("bucket", s1()),
        req("folder", s()),
        opt("chunk_size", int()),
        opt("fast_list", b()),
    ])
}

// ---- periodic snapshot tasks -----------------------------------------------------

fn snapshot_schedule(flavor: ApiFlavor) -> ObjTy {
    let time = || checked(s(), time_check);
    obj(vec![
        opt("minute", s()),
        opt("hour", s()),
        opt("dom", s()),
        opt("month", s()),
        opt("dow", s()),
        opt("begin", time()),
        opt("end", time()),
    ])
    .with_check(if flavor == ApiFlavor::V24_10 {
        cron_window_check
    } else {
        cron_check
    })
}

fn snapshot_task(flavor: ApiFlavor) -> ObjTy {
    let v24 = flavor == ApiFlavor::V24_10;
    let field = |name, ty, required_on_24| Field {
        name,
        ty,
        required: v24 && required_on_24,
    };
    obj(vec![
        req("dataset", s()),
        field("recursive", b(), true),
        field("exclude", list(s()), false),
        field("lifetime_value", int(), true),
        field(
            "lifetime_unit",
            one_of(&["HOUR", "DAY", "WEEK", "MONTH", "YEAR"]),
            true,
        ),
        field("naming_schema", checked(s(), naming_schema_check), true),
        field("schedule", snapshot_schedule(flavor).ty(), true),
        field("allow_empty", b(), false),
        field("enabled", b(), false),
    ])
}

fn snapshot_update(flavor: ApiFlavor) -> Ty {
    let mut o = snapshot_task(flavor).partial();
    o.fields.push(opt("fixate_removal_date", b()));
    o.ty()
}

// ---- SNMP -----------------------------------------------------------------------

fn snmp_update(flavor: ApiFlavor) -> Ty {
    let community = match flavor {
        ApiFlavor::V24_10 => s_pattern(r"^[-_.a-zA-Z0-9\s]*$", community_24_10),
        ApiFlavor::V25_04 => s_pattern(r"^[-_a-zA-Z0-9\s]*$", community_25_04),
        ApiFlavor::V25_10 | ApiFlavor::V26_0 | ApiFlavor::V27_0 => s_pattern(
            r"^[!\$%&()\+\-_={}\[\]<>,\.\?a-zA-Z0-9\s]*$",
            community_25_10,
        ),
    };
    // 27.0 removed `loglevel` (`18b1a2115c`); sending it is refused (extra fields forbidden).
    let loglevel = (flavor < ApiFlavor::V27_0).then(|| opt("loglevel", int_range(0, 7)));
    obj(vec![
        opt("location", s()),
        opt("contact", checked(s(), contact_check)),
        opt("traps", b()),
        opt("v3", b()),
        opt("community", community),
        opt("v3_username", s_max(20)),
        opt("v3_authtype", one_of(&["", "MD5", "SHA"])),
        opt("v3_password", s()),
        opt(
            "v3_privproto",
            Ty::Enum(vec![Value::Null, "AES".into(), "DES".into()]),
        ),
        opt("v3_privpassphrase", nullable(s())),
    ]
    .into_iter()
    .chain(loglevel)
    .chain([opt("options", long_s()), opt("zilstat", b())])
    .collect())
    .ty()
}

// ---- datasets -------------------------------------------------------------------

fn dataset_update(flavor: ApiFlavor) -> Ty {
    let inherit = |choices: &[&str]| {
        let mut all: Vec<&str> = choices.to_vec();
        all.push("INHERIT");
        one_of(&all)
    };
    let pct_or_inherit = || Ty::AnyOf(vec![int_range(0, 100), one_of(&["INHERIT"])]);
    let int_or_inherit = || Ty::AnyOf(vec![int(), one_of(&["INHERIT"])]);
    let key = || s_pattern(".*:.*", has_colon);
    let v25_10 = flavor >= ApiFlavor::V25_10;
    let quota = || {
        if v25_10 {
            Ty::AnyOf(vec![
                int_ge(1_073_741_824),
                Ty::Enum(vec![0.into(), Value::Null]),
            ])
        } else {
            nullable(int())
        }
    };
    obj(vec![
        opt("comments", s()),
        opt("sync", inherit(&["STANDARD", "ALWAYS", "DISABLED"])),
        opt("snapdev", inherit(&["HIDDEN", "VISIBLE"])),
        opt("compression", inherit(COMPRESSION)),
        opt("exec", inherit(&["ON", "OFF"])),
        opt("managedby", if v25_10 { s1() } else { s() }),
        opt("quota_warning", pct_or_inherit()),
        opt("quota_critical", pct_or_inherit()),
        opt("refquota_warning", pct_or_inherit()),
        opt("refquota_critical", pct_or_inherit()),
        opt("reservation", int()),
        opt("refreservation", int()),
        opt("special_small_block_size", int_or_inherit()),
        opt("copies", int_or_inherit()),
        opt("snapdir", inherit(&["DISABLED", "VISIBLE", "HIDDEN"])),
        opt("deduplication", inherit(&["ON", "VERIFY", "OFF"])),
        opt(
            "checksum",
            inherit(&[
                "ON",
                "OFF",
                "FLETCHER2",
                "FLETCHER4",
                "SHA256",
                "SHA512",
                "SKEIN",
                "EDONR",
                "BLAKE3",
            ]),
        ),
        opt("readonly", inherit(&["ON", "OFF"])),
        opt(
            "user_properties",
            list(obj(vec![req("key", key()), req("value", s())]).ty()),
        ),
        opt("create_ancestors", b()),
        opt("force_size", b()),
        opt("volsize", int()),
        opt(
            "aclmode",
            inherit(&["PASSTHROUGH", "RESTRICTED", "DISCARD"]),
        ),
        opt("acltype", inherit(&["OFF", "NFSV4", "POSIX"])),
        opt("atime", inherit(&["ON", "OFF"])),
        opt("quota", quota()),
        opt("refquota", quota()),
        opt("recordsize", s()),
        opt(
            "user_properties_update",
            list(
                obj(vec![
                    req("key", key()),
                    opt("value", s()),
                    opt("remove", b()),
                ])
                .ty(),
            ),
        ),
    ])
    .ty()
}

fn dataset_create() -> Ty {
    let Ty::Obj(mut o) = dataset_update(ApiFlavor::V25_04) else {
        return Ty::Any;
    };
    o.fields
        .retain(|f| f.name != "user_properties_update" && f.name != "force_size");
    o.fields.insert(0, req("name", s1()));
    o.fields
        .insert(1, opt("type", one_of(&["FILESYSTEM", "VOLUME"])));
    o.fields.extend([
        opt("volblocksize", s()),
        opt("sparse", b()),
        opt("force_size", b()),
        opt("casesensitivity", s()),
        opt("share_type", s()),
        opt("xattr", s()),
        opt("encryption", b()),
        opt("inherit_encryption", b()),
        opt(
            "encryption_options",
            Ty::Obj(ObjTy::default().allow_extra()),
        ),
    ]);
    o.ty()
}

/// ZFS compression choices (`ZFS_COMPRESSION_ALGORITHM_CHOICES`).
const COMPRESSION: &[&str] = &[
    "ON",
    "OFF",
    "LZ4",
    "GZIP",
    "GZIP-1",
    "GZIP-9",
    "ZSTD",
    "ZSTD-FAST",
    "ZLE",
    "LZJB",
    "ZSTD-1",
    "ZSTD-2",
    "ZSTD-3",
    "ZSTD-4",
    "ZSTD-5",
    "ZSTD-6",
    "ZSTD-7",
    "ZSTD-8",
    "ZSTD-9",
    "ZSTD-10",
    "ZSTD-11",
    "ZSTD-12",
    "ZSTD-13",
    "ZSTD-14",
    "ZSTD-15",
    "ZSTD-16",
    "ZSTD-17",
    "ZSTD-18",
    "ZSTD-19",
    "ZSTD-FAST-1",
    "ZSTD-FAST-2",
    "ZSTD-FAST-3",
    "ZSTD-FAST-4",
    "ZSTD-FAST-5",
    "ZSTD-FAST-6",
    "ZSTD-FAST-7",
    "ZSTD-FAST-8",
    "ZSTD-FAST-9",
    "ZSTD-FAST-10",
    "ZSTD-FAST-20",
    "ZSTD-FAST-30",
    "ZSTD-FAST-40",
    "ZSTD-FAST-50",
    "ZSTD-FAST-60",
    "ZSTD-FAST-70",
    "ZSTD-FAST-80",
    "ZSTD-FAST-90",
    "ZSTD-FAST-100",
    "ZSTD-FAST-500",
    "ZSTD-FAST-1000",
];

// ---- init/shutdown scripts -------------------------------------------------------

fn init_script(flavor: ApiFlavor) -> ObjTy {
    obj(vec![
        req("type", one_of(&["COMMAND", "SCRIPT"])),
        opt("command", nullable(s())),
        opt("script", nullable(s())),
        req("when", one_of(&["PREINIT", "POSTINIT", "SHUTDOWN"])),
        opt("enabled", b()),
        opt("timeout", int()),
        opt(
            "comment",
            if flavor == ApiFlavor::V24_10 {
                s()
            } else {
                s_max(255)
            },
        ),
    ])
}

// ---- custom validators -----------------------------------------------------------

/// `HH:MM` as the middleware's `time_validator` parses it (`api/base/validators.py`).
pub fn time_check(v: &Value) -> Result<(), String> {
    let text = v.as_str().unwrap_or_default();
    let parts: Vec<&str> = text.split(':').collect();
    let [h, m] = parts.as_slice() else {
        return Err("Time should be in 24 hour format like \"18:00\"".to_owned());
    };
    let parse = |x: &str| {
        x.trim()
            .parse::<i64>()
            .map_err(|_| format!("invalid literal for int() with base 10: '{x}'"))
    };
    let (h, m) = (parse(h)?, parse(m)?);
    if !(0..=23).contains(&h) {
        return Err("hour must be in 0..23".to_owned());
    }
    if !(0..=59).contains(&m) {
        return Err("minute must be in 0..59".to_owned());
    }
    Ok(())
}

/// Parses a 5-field schedule object as cron (croniter in the middleware, croner here).
pub fn parse_cron(v: &Value) -> Result<croner::Cron, String> {
    let field = |name: &str, default: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    let pattern = format!(
        "{} {} {} {} {}",
        field("minute", "00"),
        field("hour", "*"),
        field("dom", "*"),
        field("month", "*"),
        field("dow", "*")
    );
    if pattern.split_whitespace().count() != 5 {
        return Err(format!(
            "Exactly 5 or 6 columns has to be specified for iterator expression: {pattern}"
        ));
    }
    croner::parser::CronParser::builder()
        .dom_and_dow(false)
        .build()
        .parse(&pattern)
        .map_err(|e| format!("{e} ({pattern})"))
}

/// Schedule objects: the fields must form a valid cron expression.
fn cron_check(v: &Value) -> Result<(), String> {
    parse_cron(v)
        .map(|_| ())
        .map_err(|e| format!("Please ensure fields match cron syntax - {e}"))
}

/// 24.10 `Cron(begin_end=True)`: cron syntax, `begin <= end`, and the cron must fire
/// inside the window at least once a day (`schema/dict_schema.py` `Cron.validate`).
fn cron_window_check(v: &Value) -> Result<(), String> {
    let cron =
        parse_cron(v).map_err(|e| format!("Please ensure fields match cron syntax - {e}"))?;
    let time = |name: &str, default: &str| {
        let t = v.get(name).and_then(Value::as_str).unwrap_or(default);
        chrono::NaiveTime::parse_from_str(t, "%H:%M").ok()
    };
    let (Some(begin), Some(end)) = (time("begin", "00:00"), time("end", "23:59")) else {
        return Ok(());
    };
    if begin > end {
        return Err("Begin time should be less than or equal to end time".to_owned());
    }
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    let fires_in_window = start.is_some_and(|start| {
        cron.iter_after(start)
            .take(24 * 60)
            .any(|at| (begin..=end).contains(&at.time()))
    });
    if fires_in_window {
        Ok(())
    } else {
        Err("Specified schedule does not match specified time interval".to_owned())
    }
}

/// zettarepl's `validate_snapshot_naming_schema` (`zettarepl/snapshot/name.py`).
pub fn naming_schema_check(v: &Value) -> Result<(), String> {
    let schema = v.as_str().unwrap_or_default();
    if schema.contains("%%") {
        return Err("% is not an allowed character in ZFS snapshot name".to_owned());
    }
    let bad: String = schema
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || " %_.:-".contains(*c)))
        .collect();
    match bad.chars().count() {
        0 => {}
        1 => {
            return Err(format!(
                "{bad} is not an allowed character in ZFS snapshot name"
            ));
        }
        _ => {
            return Err(format!(
                "{bad} are not allowed characters in ZFS snapshot name"
            ));
        }
    }
    if schema.contains("%s") {
        let other = schema
            .match_indices('%')
            .any(|(i, _)| !schema[i + 1..].starts_with('s'));
        if other {
            return Err("No other placeholder can be used with %s in naming schema".to_owned());
        }
        return Ok(());
    }
    for token in ["%Y", "%m", "%d", "%H", "%M"] {
        if !schema.contains(token) {
            return Err(format!("{token} must be present in snapshot naming schema"));
        }
    }
    let has_utcoffset = schema
        .match_indices("%z")
        .any(|(i, _)| i == 0 || &schema[i - 1..i] != "%");
    if has_utcoffset && schema.contains(':') {
        return Err(
            "%z and `:` can't be present in snapshot naming schema at the same time. \
                    ZFS snapshot names can't contain `+` so we use `:` instead."
                .to_owned(),
        );
    }
    round_trip(schema)
}

/// Formats a fixed instant with the schema and parses it back (as zettarepl does).
fn round_trip(schema: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(schema).any(|i| matches!(i, Item::Error)) {
        return Err(format!("Invalid naming schema: {schema}"));
    }
    let at = chrono::NaiveDate::from_ymd_opt(2000, 2, 29)
        .and_then(|d| d.and_hms_opt(19, 40, 0))
        .ok_or_else(|| "invalid reference date".to_owned())?;
    let formatted = at.format(schema).to_string();
    match chrono::NaiveDateTime::parse_from_str(&formatted, schema) {
        Ok(parsed) if parsed == at => Ok(()),
        Ok(parsed) => Err(format!(
            "Failed to parse datetime using provided format: datetime={at}, formatted={formatted}, parsed={parsed}"
        )),
        Err(e) => Err(format!(
            "time data '{formatted}' does not match format '{schema}': {e}"
        )),
    }
}

/// SNMP `contact`: an e-mail address or `^[-_a-zA-Z0-9\s]*$`.
fn contact_check(v: &Value) -> Result<(), String> {
    static PLAIN: LazyLock<Regex> = LazyLock::new(|| compile(r"^[-_a-zA-Z0-9\s]*$"));
    let text = v.as_str().unwrap_or_default();
    if PLAIN.is_match(text) || looks_like_email(text) {
        Ok(())
    } else {
        Err("Value is neither a valid e-mail address nor matches '^[-_a-zA-Z0-9\\s]*$'".to_owned())
    }
}

fn looks_like_email(text: &str) -> bool {
    let mut parts = text.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !text.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|l| !l.is_empty())
}

fn compile(pattern: &str) -> Regex {
    #[expect(
        clippy::expect_used,
        reason = "invariant: the patterns are literals tested below"
    )]
    Regex::new(pattern).expect("invariant: literal regex compiles")
}

fn community_24_10(text: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| compile(r"^[-_.a-zA-Z0-9\s]*$"));
    RE.is_match(text)
}

fn community_25_04(text: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| compile(r"^[-_a-zA-Z0-9\s]*$"));
    RE.is_match(text)
}

fn community_25_10(text: &str) -> bool {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| compile(r"^[!\$%&()\+\-_={}\[\]<>,\.\?a-zA-Z0-9\s]*$"));
    RE.is_match(text)
}

/// `.*:.*` as Python's `re.match` applies it (no newline crossing).
fn has_colon(text: &str) -> bool {
    text.lines().next().unwrap_or_default().contains(':')
}

#[cfg(test)]
#[allow(clippy::too_many_lines, clippy::needless_pass_by_value)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errs(method: &str, flavor: ApiFlavor, params: Value) -> Vec<(String, String)> {
        let spec = method_params(method, flavor).expect("method exists");
        match check_params(&spec, params.as_array().unwrap()) {
            Ok(()) => vec![],
            Err(ParamsError::Invalid(items)) => {
                items.into_iter().map(|i| (i.path, i.message)).collect()
            }
            Err(ParamsError::TooMany { expected, found }) => {
                vec![(String::new(), format!("too many {expected} {found}"))]
            }
        }
    }

    fn sop_task() -> Value {
        json!({
            "description": "Pool0 Cloud Backup", "path": "/mnt/pool0", "credentials": 1,
            "attributes": {"bucket": "truenas-a1b2", "folder": "/guid/pool0", "chunk_size": 96, "fast_list": true},
            "schedule": {"minute": "0", "hour": "0", "dom": "*", "month": "*", "dow": "*"},
            "direction": "PUSH", "transfer_mode": "SYNC", "snapshot": false, "follow_symlinks": false,
            "pre_script": "", "post_script": "", "exclude": ["/Archive/**", "/archive/**"],
            "encryption": true, "filename_encryption": false,
            "encryption_password": "pw", "encryption_salt": "salt",
            "bwlimit": [{"time": "00:00", "bandwidth": 10_000_000}, {"time": "08:00", "bandwidth": 2_500_000}],
            "transfers": null, "enabled": true
        })
    }

    #[test]
    fn sop_cloud_sync_task_is_valid_everywhere() {
        for f in ApiFlavor::ALL {
            assert_eq!(
                errs("cloudsync.create", f, json!([sop_task()])),
                vec![],
                "{f}"
            );
        }
    }

    /// One case per schema rule, per flavour where the rule differs.
    #[test]
    fn rule_table() {
        use ApiFlavor::{V24_10, V25_04, V25_10};
        let with = |k: &str, v: Value| {
            let mut t = sop_task();
            t[k] = v;
            json!([t])
        };
        let without = |k: &str| {
            let mut t = sop_task();
            t.as_object_mut().unwrap().remove(k);
            json!([t])
        };
        let cases: Vec<(&str, ApiFlavor, Value, &str, &str)> = vec![
            (
                "cloudsync.create",
                V25_04,
                without("path"),
                "cloud_sync_create.path",
                "attribute required",
            ),
            (
                "cloudsync.create",
                V25_10,
                without("path"),
                "cloud_sync_create.path",
                "Field required",
            ),
            (
                "cloudsync.create",
                V24_10,
                without("schedule"),
                "cloud_sync_create.schedule",
                "attribute required",
            ),
            (
                "cloudsync.create",
                V25_04,
                with("bogus", json!(1)),
                "cloud_sync_create.bogus",
                "Field was not expected",
            ),
            (
                "cloudsync.create",
                V25_10,
                with("bogus", json!(1)),
                "cloud_sync_create.bogus",
                "Extra inputs are not permitted",
            ),
            (
                "cloudsync.create",
                V25_10,
                with("credentials", json!("1")),
                "cloud_sync_create.credentials",
                "Input should be a valid integer",
            ),
            (
                "cloudsync.create",
                V24_10,
                with("enabled", json!(1)),
                "cloud_sync_create.enabled",
                "Not a boolean",
            ),
            (
                "cloudsync.create",
                V25_10,
                with("direction", json!("SIDEWAYS")),
                "cloud_sync_create.direction",
                "Input should be 'PUSH' or 'PULL'",
            ),
            (
                "cloudsync.create",
                V25_04,
                with("direction", json!("SIDEWAYS")),
                "cloud_sync_create.direction",
                "Invalid choice: SIDEWAYS",
            ),
            (
                "cloudsync.create",
                V25_10,
                with("bwlimit", json!([{"time": "25:00", "bandwidth": 1}])),
                "cloud_sync_create.bwlimit.0.time",
                "Value error, hour must be in 0..23",
            ),
            (
                "cloudsync.create",
                V25_04,
                with("bwlimit", json!([{"time": "8h", "bandwidth": 1}])),
                "cloud_sync_create.bwlimit.0.time",
                "Time should be in 24 hour format like \"18:00\"",
            ),
            (
                "cloudsync.create",
                V25_10,
                with("bwlimit", json!([{"time": "08:00", "bandwidth": 0}])),
                "cloud_sync_create.bwlimit.0.bandwidth",
                "Input should be greater than 0",
            ),
            (
                "cloudsync.create",
                V25_04,
                with("bwlimit", json!([{"time": "08:00", "bandwidth": 0}])),
                "cloud_sync_create.bwlimit.0.bandwidth",
                "Should be greater than or equal to 1",
            ),
            (
                "cloudsync.create",
                V25_10,
                with("bwlimit", json!({"time": "08:00"})),
                "cloud_sync_create.bwlimit",
                "Input should be a valid list",
            ),
            (
                "cloudsync.create",
                V25_10,
                with("schedule", json!({"minute": "61"})),
                "cloud_sync_create.schedule",
                "",
            ),
            (
                "cloudsync.create",
                V25_10,
                with("exclude", json!([""])),
                "cloud_sync_create.exclude.0",
                "String should have at least 1 character",
            ),
            (
                "cloudsync.create",
                V25_10,
                with("transfers", json!(0)),
                "cloud_sync_create.transfers",
                "Input should be greater than 0",
            ),
            (
                "cloudsync.create",
                V25_10,
                with(
                    "attributes",
                    json!({"bucket": "b", "folder": "", "colour": 1}),
                ),
                "cloud_sync_create.attributes.colour",
                "Extra inputs are not permitted",
            ),
            (
                "cloudsync.create",
                V25_10,
                with("description", json!("x".repeat(1025))),
                "cloud_sync_create.description",
                "String should have at most 1024 characters",
            ),
            (
                "cloudsync.credentials.create",
                V25_04,
                json!([{"name": "c", "provider": {"type": "B2", "account": "a"}}]),
                "cloud_sync_credentials_create.provider.B2.key",
                "Field required",
            ),
            (
                "cloudsync.credentials.create",
                V25_10,
                json!([{"name": "c", "provider": {"account": "a", "key": "k"}}]),
                "cloud_sync_credentials_create.provider.type",
                "Field required",
            ),
            (
                "cloudsync.credentials.create",
                V25_04,
                json!([{"name": "c", "provider": "B2", "attributes": {}}]),
                "cloud_sync_credentials_create.provider",
                "Input should be a valid dictionary",
            ),
            (
                "cloudsync.credentials.create",
                V24_10,
                json!([{"name": "c", "provider": {"type": "B2"}}]),
                "cloud_sync_credentials_create.provider",
                "Input should be a valid string",
            ),
            (
                "cloudsync.credentials.create",
                V25_04,
                json!([{"name": "", "provider": {"type": "B2", "account": "a", "key": "k"}}]),
                "cloud_sync_credentials_create.name",
                "String should have at least 1 character",
            ),
            (
                "pool.snapshottask.create",
                V25_04,
                json!([{"dataset": "pool0", "naming_schema": "auto-%Y-%m-%d"}]),
                "data.naming_schema",
                "Value error, %H must be present in snapshot naming schema",
            ),
            (
                "pool.snapshottask.create",
                V24_10,
                json!([{"dataset": "pool0", "recursive": true, "lifetime_value": 2, "lifetime_unit": "WEEK", "naming_schema": "auto/%Y%m%d%H%M", "schedule": {}}]),
                "periodic_snapshot_create.naming_schema",
                "/ is not an allowed character in ZFS snapshot name",
            ),
            (
                "pool.snapshottask.create",
                V24_10,
                json!([{"dataset": "pool0"}]),
                "periodic_snapshot_create.recursive",
                "attribute required",
            ),
            (
                "pool.snapshottask.create",
                V24_10,
                json!([{"dataset": "pool0", "recursive": true, "lifetime_value": 2, "lifetime_unit": "WEEK", "naming_schema": "auto-%Y-%m-%d_%H-%M", "schedule": {"begin": "18:00", "end": "08:00"}}]),
                "periodic_snapshot_create.schedule",
                "Begin time should be less than or equal to end time",
            ),
            (
                "pool.snapshottask.create",
                V25_10,
                json!([{"dataset": "pool0", "schedule": {"begin": "18:00", "end": "08:00"}}]),
                "",
                "",
            ),
            (
                "pool.snapshottask.create",
                V25_10,
                json!([{"dataset": "pool0", "lifetime_unit": "FORTNIGHT"}]),
                "data.lifetime_unit",
                "Input should be 'HOUR', 'DAY', 'WEEK', 'MONTH' or 'YEAR'",
            ),
            (
                "snmp.update",
                V25_04,
                json!([{"v3_authtype": "SHA256"}]),
                "snmp_update.v3_authtype",
                "Input should be '', 'MD5' or 'SHA'",
            ),
            (
                "snmp.update",
                V25_04,
                json!([{"v3_username": "u".repeat(21)}]),
                "snmp_update.v3_username",
                "String should have at most 20 characters",
            ),
            (
                "snmp.update",
                V24_10,
                json!([{"community": "pub.lic"}]),
                "",
                "",
            ),
            (
                "snmp.update",
                V25_04,
                json!([{"community": "pub.lic"}]),
                "snmp_update.community",
                "String should match pattern '^[-_a-zA-Z0-9\\s]*$'",
            ),
            (
                "snmp.update",
                V25_10,
                json!([{"community": "pub.lic!"}]),
                "",
                "",
            ),
            (
                "snmp.update",
                V25_10,
                json!([{"community": "pub/lic"}]),
                "snmp_update.community",
                "",
            ),
            (
                "snmp.update",
                V25_10,
                json!([{"loglevel": 9}]),
                "snmp_update.loglevel",
                "Input should be less than or equal to 7",
            ),
            (
                "snmp.update",
                V25_04,
                json!([{"contact": "ops@example.com"}]),
                "",
                "",
            ),
            (
                "snmp.update",
                V25_04,
                json!([{"contact": "ops@@example"}]),
                "snmp_update.contact",
                "",
            ),
            (
                "snmp.update",
                V25_04,
                json!([]),
                "snmp_update",
                "Field required",
            ),
            ("snmp.update", V24_10, json!([]), "", ""),
            (
                "pool.dataset.update",
                V25_10,
                json!(["pool0", {"user_properties_update": [{"key": "nocolon", "value": "x"}]}]),
                "data.user_properties_update.0.key",
                "String should match pattern '.*:.*'",
            ),
            (
                "pool.dataset.update",
                V25_04,
                json!(["pool0", {"user_properties_update": [{"key": "nocolon", "value": "x"}]}]),
                "pool_dataset_update.user_properties_update.0.key",
                "Value does not match '.*:.*' pattern",
            ),
            (
                "pool.dataset.update",
                V25_10,
                json!(["pool0"]),
                "data",
                "Field required",
            ),
            ("pool.dataset.update", V25_04, json!(["pool0"]), "", ""),
            (
                "initshutdownscript.create",
                V25_04,
                json!([{"type": "COMMAND", "command": "x", "when": "POSTINIT", "comment": "c".repeat(256)}]),
                "data.comment",
                "String should have at most 255 characters",
            ),
            (
                "initshutdownscript.create",
                V24_10,
                json!([{"type": "COMMAND", "command": "x", "when": "LATER"}]),
                "init_shutdown_script_create.when",
                "Invalid choice: LATER",
            ),
            (
                "service.update",
                V25_10,
                json!(["snmp"]),
                "service_update",
                "Field required",
            ),
            ("service.update", V25_04, json!(["snmp"]), "", ""),
            (
                "cloudsync.query",
                V25_10,
                json!([[], {"relationships": true}]),
                "options.relationships",
                "Extra inputs are not permitted",
            ),
            (
                "cloudsync.query",
                V25_04,
                json!([[], {"relationships": true}]),
                "",
                "",
            ),
            (
                "core.get_jobs",
                V24_10,
                json!([[["id", "=", 1]], {"get": "yes"}]),
                "query-options.get",
                "Not a boolean",
            ),
            (
                "core.set_options",
                V25_10,
                json!([{"legacy_jobs": "no"}]),
                "options.legacy_jobs",
                "Input should be a valid boolean",
            ),
            (
                "auth.login_ex",
                V25_04,
                json!([{"mechanism": "API_KEY_PLAIN", "username": "root"}]),
                "login_data.API_KEY_PLAIN.api_key",
                "Field required",
            ),
            (
                "system.info",
                V25_10,
                json!([1]),
                "",
                "Too many arguments (expected 0, found 1)",
            ),
            ("system.info", V25_04, json!([1]), "", "too many 0 1"),
        ];
        for (method, flavor, params, path, message) in cases {
            let got = errs(method, flavor, params.clone());
            if path.is_empty() && message.is_empty() {
                assert_eq!(got, vec![], "{method} {flavor} {params}");
                continue;
            }
            let hit = got
                .iter()
                .any(|(p, m)| p == path && (message.is_empty() || m == message));
            assert!(
                hit,
                "{method} {flavor} {params}: wanted {path}: {message}, got {got:?}"
            );
        }
    }

    #[test]
    fn naming_schemas() {
        for ok in [
            "auto-%Y-%m-%d_%H-%M",
            "%Y%m%d%H%M",
            "snap-%s",
            "auto-%d.%m.%Y-%H:%M",
        ] {
            assert_eq!(naming_schema_check(&json!(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "auto-%Y-%m-%d_%H",
            "%%Y%m%d%H%M",
            "a/b%Y%m%d%H%M",
            "%s-%Y",
            "auto-%Y-%m-%d_%H-%M-%z:",
        ] {
            assert!(naming_schema_check(&json!(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_and_crons() {
        assert_eq!(time_check(&json!("08:00")), Ok(()));
        assert_eq!(time_check(&json!("8:00")), Ok(()));
        assert_eq!(
            time_check(&json!("24:00")),
            Err("hour must be in 0..23".into())
        );
        assert_eq!(
            time_check(&json!("12:60")),
            Err("minute must be in 0..59".into())
        );
        assert!(time_check(&json!("1200")).is_err());
        assert!(cron_check(&json!({"minute": "0", "hour": "0"})).is_ok());
        assert!(cron_check(&json!({"minute": "*/15", "dow": "1-5"})).is_ok());
        assert!(cron_check(&json!({"minute": "00", "hour": "*"})).is_ok());
        assert!(cron_check(&json!({"minute": "61"})).is_err());
        assert!(cron_check(&json!({"hour": "a b"})).is_err());
        assert!(
            cron_window_check(
                &json!({"minute": "0", "hour": "3", "begin": "08:00", "end": "18:00"})
            )
            .is_err()
        );
        assert!(
            cron_window_check(
                &json!({"minute": "0", "hour": "*", "begin": "08:00", "end": "18:00"})
            )
            .is_ok()
        );
    }

    #[test]
    fn every_allow_listed_method_has_params_where_it_exists() {
        for flavor in ApiFlavor::ALL {
            for m in truenas_agent::middleware::Method::ALL {
                assert_eq!(
                    method_params(m.as_str(), flavor).is_some(),
                    m.available_on(flavor),
                    "{m} on {flavor}"
                );
            }
        }
    }
}
