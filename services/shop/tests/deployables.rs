//! `shop up` starts every deployable the spec declares: a service added to the spec
//! fails this test until the launcher runs it too.

#[test]
fn the_launcher_runs_every_deployable_of_the_spec() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let file = root.join("spec/shop.yaml");
    let text = std::fs::read_to_string(&file).expect("spec/shop.yaml");
    let system = codegen::load(&file, &text).expect("the spec loads");
    let mut in_spec: Vec<&str> = system.deployables.iter().map(|d| d.name.as_str()).collect();
    in_spec.sort();
    let mut launched = shop::DEPLOYABLES.to_vec();
    launched.sort();
    assert_eq!(launched, in_spec);
}
