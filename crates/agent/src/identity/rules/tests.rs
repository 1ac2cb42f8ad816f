use proptest::prelude::*;

use super::*;
use crate::fault::Fault;

const A: &str = "9babab19-acc0-4587-aa05-ccd8103a1148";
const C: &str = "0f0c6a4e-2b4b-4c7e-9d3e-6b1f2a3c4d5e";
const FRESH: &str = "3e1f4a52-8d7c-4b6a-a1e2-0c9d8b7a6f54";

fn pool(name: &str) -> PoolName {
    PoolName::parse(name).unwrap()
}
fn prop() -> UserPropKey {
    UserPropKey::parse("com.dtctoday:device-guid").unwrap()
}
fn host_prop() -> UserPropKey {
    UserPropKey::parse("com.dtctoday:device-host").unwrap()
}
fn h1() -> HostId {
    HostId::from_hostid_bytes(&[0x11, 0x8b, 0x52, 0x34]).unwrap()
}
fn h2() -> HostId {
    HostId::from_hostid_bytes(&[0x78, 0x56, 0x34, 0x12]).unwrap()
}

fn value(v: &str) -> GuidValue {
    match v {
        "" => GuidValue::Absent,
        v => parse_dashed(v).map_or_else(
            || GuidValue::Corrupt(v.to_owned()),
            |uuid| GuidValue::Valid {
                uuid,
                stored: v.to_owned(),
            },
        ),
    }
}

/// Pools (boot pools are listed but never read), the GUID value per data pool ("" absent).
fn facts(pools: &[&str], guids: &[(&str, &str)], host: Option<HostId>) -> Facts {
    Facts {
        pools: pools.iter().map(|p| pool(p)).collect(),
        guids: guids.iter().map(|(p, v)| (pool(p), value(v))).collect(),
        host,
    }
}

struct Case {
    mode: Mode,
    central: Option<&'static str>,
    rebind: bool,
}

const ENSURE: Case = Case {
    mode: Mode::Ensure,
    central: None,
    rebind: false,
};
const OBSERVE: Case = Case {
    mode: Mode::Observe,
    central: None,
    rebind: false,
};

fn run(case: &Case, root: &str, facts: &Facts, binding: &Binding) -> Decision {
    let property = prop();
    let host_property = host_prop();
    let inputs = RuleInputs {
        mode: case.mode,
        property: &property,
        host_property: &host_property,
        central_guid: case.central.map(|c| Uuid::try_parse(c).unwrap()),
        rebind: case.rebind,
        fresh: Uuid::try_parse(FRESH).unwrap(),
    };
    decide(&inputs, &pool(root), facts, binding)
}

fn bound(host: &HostId) -> Binding {
    Binding::Present(host.to_string())
}

fn kinds(d: &Decision) -> Vec<String> {
    d.problems
        .iter()
        .map(|p| {
            serde_json::to_value(p).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn writes(d: &Decision) -> Vec<(String, String)> {
    d.writes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- root pool choice ----

fn choose(hint: &RootPoolHint, facts: &Facts) -> Result<(String, RootPoolSource), ProblemKind> {
    choose_root(hint, facts, &prop()).map(|(p, s)| (p.to_string(), s))
}

#[test]
fn the_document_wins_then_the_local_config() {
    let f = facts(
        &["pool0", "pool1"],
        &[("pool0", ""), ("pool1", A)],
        Some(h1()),
    );
    let both = RootPoolHint {
        document: Some(pool("pool0")),
        local: Some(pool("pool1")),
    };
    assert_eq!(
        choose(&both, &f).unwrap(),
        ("pool0".into(), RootPoolSource::Document)
    );
    let local = RootPoolHint {
        document: None,
        local: Some(pool("pool1")),
    };
    assert_eq!(
        choose(&local, &f).unwrap(),
        ("pool1".into(), RootPoolSource::Config)
    );
}

#[test]
fn a_named_boot_pool_or_missing_pool_is_refused() {
    let f = facts(
        &["boot-pool", "freenas-boot", "pool0"],
        &[("pool0", "")],
        None,
    );
    for name in ["boot-pool", "freenas-boot"] {
        for hint in [
            RootPoolHint {
                document: Some(pool(name)),
                local: None,
            },
            RootPoolHint {
                document: None,
                local: Some(pool(name)),
            },
        ] {
            assert_eq!(
                choose(&hint, &f).unwrap_err(),
                ProblemKind::RootPoolIsBootPool { pool: name.into() }
            );
        }
    }
    let hint = RootPoolHint {
        document: None,
        local: Some(pool("tank")),
    };
    assert_eq!(
        choose(&hint, &f).unwrap_err(),
        ProblemKind::RootPoolNotImported {
            pool: "tank".into(),
            imported: vec!["pool0".into()]
        }
    );
}

#[test]
fn without_a_hint_the_one_carrier_then_the_only_data_pool() {
    let none = RootPoolHint::default();
    let f = facts(
        &["pool0", "pool1", "pool2"],
        &[("pool0", ""), ("pool1", A), ("pool2", "")],
        None,
    );
    assert_eq!(
        choose(&none, &f).unwrap(),
        ("pool1".into(), RootPoolSource::Carrier)
    );
    let f = facts(
        &["pool0", "pool1"],
        &[("pool0", ""), ("pool1", "junk")],
        None,
    );
    assert_eq!(
        choose(&none, &f).unwrap(),
        ("pool1".into(), RootPoolSource::Carrier),
        "a corrupt value still marks the carrier"
    );
    let f = facts(&["boot-pool", "pool0"], &[("pool0", "")], None);
    assert_eq!(
        choose(&none, &f).unwrap(),
        ("pool0".into(), RootPoolSource::OnlyDataPool),
        "the boot pool is never a candidate"
    );
}

#[test]
fn without_a_hint_ambiguity_is_refused() {
    let none = RootPoolHint::default();
    let f = facts(&["pool0", "pool1"], &[("pool0", ""), ("pool1", "")], None);
    let err = choose(&none, &f).unwrap_err();
    assert_eq!(
        err,
        ProblemKind::SeveralPoolsSetRootPool {
            pools: vec!["pool0".into(), "pool1".into()]
        }
    );
    assert!(err.to_string().starts_with("several pools, set root_pool"));
    let f = facts(&["pool0", "pool1"], &[("pool0", A), ("pool1", C)], None);
    assert!(matches!(
        choose(&none, &f).unwrap_err(),
        ProblemKind::SeveralPoolsCarryGuid { .. }
    ));
    assert_eq!(
        choose(&none, &facts(&["boot-pool"], &[], None)).unwrap_err(),
        ProblemKind::NoDataPool
    );
    assert_eq!(
        choose(&none, &facts(&[], &[], None)).unwrap_err(),
        ProblemKind::NoDataPool
    );
}

// ---- the GUID ----

#[test]
fn absent_generates_writes_and_binds_in_one_set() {
    let f = facts(&["pool0"], &[("pool0", "")], Some(h1()));
    let d = run(&ENSURE, "pool0", &f, &Binding::Absent);
    assert_eq!(
        writes(&d),
        [
            ("com.dtctoday:device-guid".into(), FRESH.into()),
            ("com.dtctoday:device-host".into(), h1().to_string())
        ]
    );
    assert_eq!(d.guid.as_deref(), Some(FRESH));
    assert_eq!(d.guid_source, Some(GuidSource::Generated));
    assert_eq!(d.binding, BindingState::Bound);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(
        d.changes,
        [
            Change::WroteGuid {
                pool: "pool0".into(),
                guid: FRESH.into(),
                source: GuidSource::Generated
            },
            Change::BoundHost {
                pool: "pool0".into(),
                host: h1().to_string()
            }
        ]
    );
}

#[test]
fn present_and_valid_is_kept() {
    let f = facts(&["pool0"], &[("pool0", A)], Some(h1()));
    let d = run(&ENSURE, "pool0", &f, &bound(&h1()));
    assert!(d.writes.is_empty());
    assert_eq!(d.guid.as_deref(), Some(A));
    assert_eq!(d.guid_source, Some(GuidSource::Zfs));
    assert_eq!(d.binding, BindingState::Bound);
    assert!(d.problems.is_empty());
    assert!(d.changes.is_empty());
}

#[test]
fn present_but_unbound_is_kept_and_bound() {
    let f = facts(&["pool0"], &[("pool0", A)], Some(h1()));
    let d = run(&ENSURE, "pool0", &f, &Binding::Absent);
    assert_eq!(
        writes(&d),
        [("com.dtctoday:device-host".into(), h1().to_string())]
    );
    assert_eq!(d.guid_source, Some(GuidSource::Zfs));
}

#[test]
fn central_equal_is_kept_as_central() {
    let f = facts(&["pool0"], &[("pool0", A)], Some(h1()));
    let d = run(
        &Case {
            central: Some(A),
            ..ENSURE
        },
        "pool0",
        &f,
        &bound(&h1()),
    );
    assert!(d.writes.is_empty());
    assert_eq!(d.guid_source, Some(GuidSource::Central));
    assert_eq!(d.correction, None);
}

#[test]
fn central_differs_rewrites_and_reports_the_old_value() {
    let f = facts(&["pool0"], &[("pool0", A)], Some(h1()));
    let d = run(
        &Case {
            central: Some(C),
            ..ENSURE
        },
        "pool0",
        &f,
        &bound(&h1()),
    );
    assert_eq!(writes(&d), [("com.dtctoday:device-guid".into(), C.into())]);
    assert_eq!(d.guid.as_deref(), Some(C));
    assert_eq!(d.guid_source, Some(GuidSource::Central));
    assert_eq!(
        d.correction,
        Some(Correction {
            old: A.into(),
            new: C.into()
        })
    );
    assert_eq!(
        d.changes,
        [Change::CorrectedGuid {
            pool: "pool0".into(),
            old: A.into(),
            new: C.into()
        }]
    );
}

#[test]
fn central_absent_root_writes_centrals() {
    let f = facts(&["pool0"], &[("pool0", "")], Some(h1()));
    let d = run(
        &Case {
            central: Some(C),
            ..ENSURE
        },
        "pool0",
        &f,
        &Binding::Absent,
    );
    assert_eq!(writes(&d)[0], ("com.dtctoday:device-guid".into(), C.into()));
    assert_eq!(d.guid_source, Some(GuidSource::Central));
    assert_eq!(d.correction, None);
}

#[test]
fn corrupt_is_reported_not_overwritten() {
    let f = facts(&["pool0"], &[("pool0", "not-a-uuid\tx")], Some(h1()));
    let d = run(&ENSURE, "pool0", &f, &bound(&h1()));
    assert!(d.writes.is_empty());
    assert_eq!(d.guid, None);
    assert_eq!(kinds(&d), ["corrupt_guid"]);
    assert!(d.problems[0].blocking);
    assert!(
        d.problems[0].message.contains("`not-a-uuid\\tx`"),
        "{}",
        d.problems[0].message
    );
}

#[test]
fn corrupt_is_overwritten_when_central_supplies_the_guid() {
    let f = facts(&["pool0"], &[("pool0", "garbage")], Some(h1()));
    let d = run(
        &Case {
            central: Some(C),
            ..ENSURE
        },
        "pool0",
        &f,
        &bound(&h1()),
    );
    assert_eq!(writes(&d), [("com.dtctoday:device-guid".into(), C.into())]);
    assert_eq!(
        d.correction,
        Some(Correction {
            old: "garbage".into(),
            new: C.into()
        })
    );
    assert!(d.problems.is_empty());
}

#[test]
fn the_guid_is_never_written_onto_a_second_pool() {
    let f = facts(
        &["pool0", "pool1"],
        &[("pool0", ""), ("pool1", A)],
        Some(h1()),
    );
    for case in [
        ENSURE,
        Case {
            central: Some(C),
            ..ENSURE
        },
        Case {
            rebind: true,
            ..ENSURE
        },
    ] {
        let d = run(&case, "pool0", &f, &Binding::Absent);
        assert!(d.writes.is_empty(), "{:?}", d.writes);
        assert_eq!(kinds(&d), ["guid_on_other_pool"]);
        assert_eq!(d.guid, None);
    }
}

#[test]
fn copies_on_other_pools_are_reported_but_the_root_is_used() {
    let f = facts(
        &["pool0", "pool1"],
        &[("pool0", A), ("pool1", C)],
        Some(h1()),
    );
    let d = run(&ENSURE, "pool0", &f, &bound(&h1()));
    assert_eq!(d.guid.as_deref(), Some(A));
    assert_eq!(kinds(&d), ["guid_also_on_other_pools"]);
    assert!(!d.problems[0].blocking);
    assert!(d.writes.is_empty());
}

#[test]
fn an_upper_case_guid_is_kept_with_a_warning_and_central_normalises_it() {
    let upper = A.to_ascii_uppercase();
    let f = Facts {
        guids: [(pool("pool0"), value(&upper))].into(),
        ..facts(&["pool0"], &[], Some(h1()))
    };
    let d = run(&ENSURE, "pool0", &f, &bound(&h1()));
    assert_eq!(d.guid.as_deref(), Some(upper.as_str()));
    assert_eq!(kinds(&d), ["guid_not_canonical"]);
    assert!(!d.problems[0].blocking);
    let d = run(
        &Case {
            central: Some(A),
            ..ENSURE
        },
        "pool0",
        &f,
        &bound(&h1()),
    );
    assert_eq!(writes(&d), [("com.dtctoday:device-guid".into(), A.into())]);
    assert_eq!(d.correction.unwrap().old, upper);
}

#[test]
fn only_the_dashed_form_is_a_guid() {
    assert!(parse_dashed(A).is_some());
    assert!(parse_dashed(&A.replace('-', "")).is_none());
    assert!(parse_dashed(&format!("{{{A}}}")).is_none());
    assert!(parse_dashed(&format!("urn:uuid:{A}")).is_none());
    assert!(parse_dashed("9babab19-acc0-4587-aa05-ccd8103a114g").is_none());
}

// ---- host binding: clone / move ----

#[test]
fn another_hosts_pool_is_not_impersonated() {
    let f = facts(&["pool0"], &[("pool0", A)], Some(h1()));
    let d = run(&ENSURE, "pool0", &f, &bound(&h2()));
    assert!(d.writes.is_empty());
    assert_eq!(kinds(&d), ["pool_moved_or_cloned"]);
    assert!(d.problems[0].blocking);
    assert_eq!(d.problems[0].fault, Fault::Operator);
    assert!(
        d.problems[0]
            .message
            .starts_with("pool moved or box cloned"),
        "{}",
        d.problems[0].message
    );
    assert_eq!(d.guid.as_deref(), Some(A), "shown, but blocked");
    assert_eq!(d.binding, BindingState::OtherHost);
}

#[test]
fn a_moved_pool_without_a_guid_gets_none_generated() {
    let f = facts(&["pool0"], &[("pool0", "")], Some(h1()));
    let d = run(&ENSURE, "pool0", &f, &bound(&h2()));
    assert!(d.writes.is_empty());
    assert_eq!(d.guid, None);
    assert_eq!(kinds(&d), ["pool_moved_or_cloned"]);
}

#[test]
fn a_malformed_binding_counts_as_another_host() {
    let f = facts(&["pool0"], &[("pool0", A)], Some(h1()));
    let d = run(&ENSURE, "pool0", &f, &Binding::Present("junk".into()));
    assert_eq!(kinds(&d), ["pool_moved_or_cloned"]);
}

#[test]
fn a_technician_rebind_updates_only_the_binding() {
    let f = facts(&["pool0"], &[("pool0", A)], Some(h1()));
    let d = run(
        &Case {
            rebind: true,
            ..ENSURE
        },
        "pool0",
        &f,
        &bound(&h2()),
    );
    assert_eq!(
        writes(&d),
        [("com.dtctoday:device-host".into(), h1().to_string())]
    );
    assert_eq!(
        d.changes,
        [Change::Rebound {
            pool: "pool0".into(),
            old_host: h2().to_string(),
            new_host: h1().to_string(),
            confirmed_by: Confirmation::Technician
        }]
    );
    assert!(d.problems.is_empty());
    assert_eq!(d.binding, BindingState::Bound);
    assert_eq!(d.guid_source, Some(GuidSource::Zfs));
}

#[test]
fn centrals_guid_confirms_a_move() {
    let f = facts(&["pool0"], &[("pool0", A)], Some(h1()));
    let d = run(
        &Case {
            central: Some(A),
            ..ENSURE
        },
        "pool0",
        &f,
        &bound(&h2()),
    );
    assert_eq!(
        writes(&d),
        [("com.dtctoday:device-host".into(), h1().to_string())]
    );
    assert!(matches!(
        d.changes[..],
        [Change::Rebound {
            confirmed_by: Confirmation::Central,
            ..
        }]
    ));
    let d = run(
        &Case {
            central: Some(C),
            ..ENSURE
        },
        "pool0",
        &f,
        &bound(&h2()),
    );
    assert_eq!(
        writes(&d),
        [
            ("com.dtctoday:device-guid".into(), C.into()),
            ("com.dtctoday:device-host".into(), h1().to_string())
        ]
    );
    assert_eq!(d.changes.len(), 2);
}

#[test]
fn without_a_host_id_the_guid_still_works_without_binding() {
    let f = facts(&["pool0"], &[("pool0", "")], None);
    let d = run(&ENSURE, "pool0", &f, &Binding::Absent);
    assert_eq!(
        writes(&d),
        [("com.dtctoday:device-guid".into(), FRESH.into())]
    );
    assert_eq!(kinds(&d), ["host_unknown"]);
    assert!(!d.problems[0].blocking);
    assert_eq!(d.binding, BindingState::HostUnknown);
}

// ---- observe ----

#[test]
fn observe_turns_pending_changes_into_problems() {
    let f = facts(&["pool0"], &[("pool0", "")], Some(h1()));
    let d = run(&OBSERVE, "pool0", &f, &Binding::Absent);
    assert!(d.writes.is_empty() && d.changes.is_empty());
    assert_eq!(kinds(&d), ["guid_absent", "not_bound"]);
    assert_eq!((d.guid, d.guid_source), (None, None));

    let f = facts(&["pool0"], &[("pool0", A)], Some(h1()));
    let d = run(
        &Case {
            central: Some(C),
            ..OBSERVE
        },
        "pool0",
        &f,
        &bound(&h1()),
    );
    assert_eq!(kinds(&d), ["central_guid_differs"]);
    assert_eq!(d.guid.as_deref(), Some(A));
    assert_eq!(d.guid_source, Some(GuidSource::Zfs));
    assert_eq!(d.correction, None);

    let d = run(
        &Case {
            central: Some(A),
            ..OBSERVE
        },
        "pool0",
        &f,
        &bound(&h1()),
    );
    assert!(d.problems.is_empty());
    assert_eq!(d.guid_source, Some(GuidSource::Central));

    let d = run(
        &Case {
            rebind: true,
            ..OBSERVE
        },
        "pool0",
        &f,
        &bound(&h2()),
    );
    assert_eq!(kinds(&d), ["pool_moved_or_cloned"]);
}

// ---- invariants over many cases ----

fn arb_value() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(A), Just(C), Just("junk")]
}

proptest! {
    #[test]
    fn invariants(
        pools in proptest::sample::subsequence(vec!["boot-pool", "pool0", "pool1", "pool2"], 0..=4),
        values in proptest::collection::vec(arb_value(), 3),
        host in prop_oneof![Just(None), Just(Some(1u8)), Just(Some(2u8))],
        binding in prop_oneof![Just(None), Just(Some(1u8)), Just(Some(2u8))],
        central in prop_oneof![Just(None), Just(Some(A)), Just(Some(C))],
        rebind in any::<bool>(),
        observe in any::<bool>(),
        hint in prop_oneof![Just(None), Just(Some("pool0")), Just(Some("boot-pool")), Just(Some("pool2"))],
    ) {
        let host_of = |n: u8| if n == 1 { h1() } else { h2() };
        let data: Vec<&str> = pools.iter().copied().filter(|p| *p != "boot-pool").collect();
        let guids: Vec<(&str, &str)> = data.iter().zip(&values).map(|(p, v)| (*p, *v)).collect();
        let f = facts(&pools, &guids, host.map(host_of));
        let hint = RootPoolHint { document: hint.map(pool), local: None };
        let Ok((root, _)) = choose_root(&hint, &f, &prop()) else {
            return Ok(());
        };
        prop_assert!(!root.is_boot_pool());
        let b = binding.map_or(Binding::Absent, |n| bound(&host_of(n)));
        let case = Case { mode: if observe { Mode::Observe } else { Mode::Ensure }, central, rebind };
        let d = run(&case, root.as_str(), &f, &b);
        let wrote_guid = d.writes.iter().any(|(k, _)| *k == prop());
        // Only our two properties, each at most once.
        prop_assert!(d.writes.iter().all(|(k, _)| *k == prop() || *k == host_prop()));
        prop_assert!(d.writes.len() <= 2);
        // Observe never writes; a blocking problem means no write at all.
        if observe || d.problems.iter().any(|p| p.blocking) {
            prop_assert!(d.writes.is_empty(), "{:?}", d);
        }
        let root_value = f.guids.get(&root).cloned().unwrap_or(GuidValue::Absent);
        let others = f.guids.iter().any(|(p, v)| *p != root && *v != GuidValue::Absent);
        // Never a second pool; never over a corrupt value without central.
        if root_value == GuidValue::Absent && others {
            prop_assert!(!wrote_guid);
        }
        if matches!(root_value, GuidValue::Corrupt(_)) && central.is_none() {
            prop_assert!(!wrote_guid);
        }
        // Central wins whenever the GUID is usable.
        if let (Some(c), false) = (central, d.problems.iter().any(|p| p.blocking)) {
            prop_assert_eq!(d.guid.as_deref(), Some(c));
        }
        // A pool bound elsewhere is rebound only with a confirmation.
        let bound_elsewhere = matches!((&b, &f.host), (Binding::Present(x), Some(h)) if x != h.as_str());
        if bound_elsewhere && central.is_none() && !rebind {
            prop_assert!(d.writes.is_empty());
            let moved = d.problems.iter().any(|p| matches!(p.kind, ProblemKind::PoolMovedOrCloned { .. }));
            prop_assert!(moved);
        }
        // A generated GUID is a lower-case v4.
        if d.guid_source == Some(GuidSource::Generated) {
            let g = d.guid.clone().unwrap();
            prop_assert_eq!(Uuid::try_parse(&g).unwrap().get_version_num(), 4);
            prop_assert_eq!(g.to_ascii_lowercase(), g);
        }
    }
}
