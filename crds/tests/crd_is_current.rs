//! The CRD YAML checked into the Helm chart must be exactly what `crdgen` prints now, or the
//! chart installs a schema that no longer matches the operator's types.

#[test]
fn checked_in_crd_is_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/huddle/crds/sessions.yaml"
    );
    let checked_in = std::fs::read_to_string(path).expect("reading the checked-in CRD");
    let generated = huddle_crds::crd_yaml().expect("generating the CRD");
    assert!(
        checked_in == generated,
        "{path} is stale; regenerate it with \
         `cargo run -p huddle-crds --bin crdgen > charts/huddle/crds/sessions.yaml`"
    );
}
