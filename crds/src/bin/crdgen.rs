//! Prints the `Session` CustomResourceDefinition as YAML. Its output is checked in at
//! `charts/huddle/crds/sessions.yaml`; the `checked_in_crd_is_current` test fails when the two
//! differ, so regenerate with `cargo run -p huddle-crds --bin crdgen > charts/huddle/crds/sessions.yaml`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", huddle_crds::crd_yaml()?);
    Ok(())
}
