//! The traceability registry through the real runtime: a farm-to-shop
//! journey with aggregation, custody, observation and transformation.

use provenance::{EventKind, ItemStatus, ProvenanceClient, Traced};
use stele_sdk::Address;
use stele_testkit::{Caller, TestKit};

struct Chain {
    kit: TestKit,
    registry: Address,
    admin: Address,
    farm: Address,
    carrier: Address,
    lab: Address,
}

impl Chain {
    fn as_party(&self, party: Address) -> ProvenanceClient<Caller<'_>> {
        ProvenanceClient::new(self.registry, self.kit.caller(party))
    }
}

fn chain() -> Chain {
    let kit = TestKit::new();
    let admin = kit.account("consortium");
    let registry = kit.deploy_crate("provenance", admin, &());
    let (farm, carrier, lab) = (
        kit.account("farm"),
        kit.account("carrier"),
        kit.account("lab"),
    );
    let chain = Chain {
        kit,
        registry,
        admin,
        farm,
        carrier,
        lab,
    };
    for (party, name, role) in [
        (farm, "Green Acres", "farm"),
        (carrier, "FastFreight", "carrier"),
        (lab, "QualiLab", "lab"),
    ] {
        chain
            .as_party(admin)
            .register_party(party, name.into(), role.into())
            .unwrap();
    }
    chain
}

const LOT: &str = "urn:epc:id:sgtin:0614141.107346.2017";
const PALLET: &str = "urn:epc:id:sscc:0614141.1234567890";

#[test]
fn only_the_admin_registers_and_only_parties_act() {
    let c = chain();
    let stranger = c.kit.account("stranger");
    let error = c
        .as_party(c.farm)
        .register_party(stranger, "x".into(), "y".into())
        .unwrap_err();
    assert_eq!(
        error.message,
        "ProvenanceError::NotAdmin: only the admin may register parties"
    );
    let error = c
        .as_party(stranger)
        .commission(LOT.into(), "apples".into(), "field 7".into())
        .unwrap_err();
    assert_eq!(
        error.message,
        "ProvenanceError::NotRegistered: not a registered party"
    );
    assert_eq!(
        c.as_party(c.admin).party(c.farm).unwrap().unwrap().role,
        "farm"
    );
}

#[test]
fn commissioning_and_observations_build_a_history() {
    let c = chain();
    let farm = c.as_party(c.farm);
    farm.commission(
        LOT.into(),
        "apples, 10 kg".into(),
        "urn:epc:id:sgln:0614141.00777.0".into(),
    )
    .unwrap();
    assert!(c.kit.emitted(&Traced {
        item: LOT.into(),
        who: c.farm,
        business_step: "commissioning".into()
    }));
    assert_eq!(
        farm.commission(LOT.into(), "again".into(), String::new())
            .unwrap_err()
            .message,
        "ProvenanceError::ItemExists: the item already exists"
    );
    c.kit.advance(5, 60_000);
    c.as_party(c.lab)
        .record_event(
            LOT.into(),
            "lab bench 2".into(),
            "inspecting".into(),
            "passed".into(),
        )
        .unwrap();
    let history = farm.history(LOT.into(), 0, 10).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (
            history[0].kind,
            history[0].business_step.as_str(),
            history[0].who
        ),
        (EventKind::Object, "commissioning", c.farm)
    );
    let inspection = &history[1];
    assert_eq!(
        (inspection.who, inspection.disposition.as_str()),
        (c.lab, "passed")
    );
    assert_eq!(inspection.when_ms - history[0].when_ms, 60_000);
    let error = farm
        .record_event("urn:unknown".into(), String::new(), "x".into(), "y".into())
        .unwrap_err();
    assert_eq!(error.message, "ProvenanceError::UnknownItem: unknown item");
}

#[test]
fn aggregated_items_travel_with_their_pallet() {
    let c = chain();
    let farm = c.as_party(c.farm);
    let cases: Vec<String> = (0..3).map(|n| format!("{LOT}.case{n}")).collect();
    for case in &cases {
        farm.commission(case.clone(), "apples".into(), "packhouse".into())
            .unwrap();
    }
    farm.commission(PALLET.into(), "pallet".into(), "packhouse".into())
        .unwrap();
    farm.aggregate(PALLET.into(), cases.clone(), "packhouse".into())
        .unwrap();
    let case = farm.item_info(cases[0].clone()).unwrap().unwrap();
    assert_eq!(
        case.status,
        ItemStatus::Aggregated {
            parent: PALLET.into()
        }
    );
    // A packed case cannot be shipped on its own.
    assert_eq!(
        farm.transfer_custody(cases[0].clone(), c.carrier, "dock".into())
            .unwrap_err()
            .message,
        "ProvenanceError::NotActive: the item is not active"
    );

    farm.transfer_custody(PALLET.into(), c.carrier, "dock 4".into())
        .unwrap();
    for id in cases.iter().chain([&PALLET.to_string()]) {
        assert_eq!(
            farm.item_info(id.clone()).unwrap().unwrap().custodian,
            c.carrier,
            "{id}"
        );
    }
    // The farm no longer holds the pallet; the carrier does.
    assert_eq!(
        farm.transfer_custody(PALLET.into(), c.farm, "x".into())
            .unwrap_err()
            .message,
        "ProvenanceError::NotCustodian: the caller is not the item's custodian"
    );
    let pallet_history = farm.history(PALLET.into(), 0, 10).unwrap();
    let kinds: Vec<EventKind> = pallet_history.iter().map(|event| event.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Object,
            EventKind::Aggregation,
            EventKind::Transaction
        ]
    );
    assert_eq!(
        pallet_history[2].what.len(),
        4,
        "the shipment names the pallet and its cases"
    );
    // A stranger cannot receive custody.
    let error = c
        .as_party(c.carrier)
        .transfer_custody(PALLET.into(), c.kit.account("stranger"), "x".into())
        .unwrap_err();
    assert_eq!(
        error.message,
        "ProvenanceError::NotRegistered: not a registered party"
    );
}

#[test]
fn transformation_consumes_inputs_and_records_lineage() {
    let c = chain();
    let farm = c.as_party(c.farm);
    farm.commission("wheat-1".into(), "wheat".into(), "silo".into())
        .unwrap();
    farm.commission("wheat-2".into(), "wheat".into(), "silo".into())
        .unwrap();
    let outputs = vec![("flour-1".to_string(), "flour, 50 kg".to_string())];
    farm.transform(
        vec!["wheat-1".into(), "wheat-2".into()],
        outputs,
        "mill".into(),
    )
    .unwrap();
    let flour = farm.item_info("flour-1".into()).unwrap().unwrap();
    assert_eq!(flour.inputs, ["wheat-1", "wheat-2"]);
    assert_eq!(
        farm.item_info("wheat-1".into()).unwrap().unwrap().status,
        ItemStatus::Transformed
    );
    let error = farm
        .transform(
            vec!["wheat-1".into()],
            vec![("flour-2".into(), String::new())],
            "mill".into(),
        )
        .unwrap_err();
    assert_eq!(
        error.message,
        "ProvenanceError::NotActive: the item is not active"
    );
    assert!(
        farm.item_info("flour-2".into()).unwrap().is_none(),
        "a failed transformation creates nothing"
    );
    assert_eq!(
        farm.transform(vec![], vec![("x".into(), String::new())], String::new())
            .unwrap_err()
            .message,
        "ProvenanceError::BadInput: input over its limit (ids 128 bytes, texts 256, 1 to 64 items)"
    );
}

#[test]
fn history_pages_from_any_entry() {
    let c = chain();
    let farm = c.as_party(c.farm);
    farm.commission(LOT.into(), "apples".into(), "orchard".into())
        .unwrap();
    for n in 0..12 {
        c.as_party(c.lab)
            .record_event(
                LOT.into(),
                format!("check {n}"),
                "inspecting".into(),
                "passed".into(),
            )
            .unwrap();
    }
    let all = farm.history(LOT.into(), 0, 100).unwrap();
    assert_eq!(all.len(), 13);
    assert_eq!(farm.history(LOT.into(), 0, 5).unwrap(), all[..5]);
    assert_eq!(farm.history(LOT.into(), 5, 5).unwrap(), all[5..10]);
    assert_eq!(farm.history(LOT.into(), 10, 5).unwrap(), all[10..]);
    assert!(farm.history(LOT.into(), 13, 5).unwrap().is_empty());
    assert!(farm.history("urn:none".into(), 0, 5).unwrap().is_empty());
    c.kit.print_gas_table();
}
