//! `shop up` starts every deployable the spec declares, each configured by the settings
//! its table row lists.

#[test]
fn the_launcher_runs_every_deployable_of_the_spec() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let file = root.join("spec/shop.yaml");
    let text = std::fs::read_to_string(&file).expect("spec/shop.yaml");
    let system = codegen::load(&file, &text).expect("the spec loads");
    let mut in_spec: Vec<&str> = system.deployables.iter().map(|d| d.name.as_str()).collect();
    in_spec.sort();
    let mut launched = shop::deployables();
    launched.sort();
    assert_eq!(launched, in_spec);
}

/// Each deployable's own `Config` accepts what the embedded launcher gives it.
#[tokio::test]
async fn every_deployable_takes_its_embedded_settings() {
    if let Err(e) = keel::embedded::configure_all(&shop::SYSTEM).await {
        panic!("{e:#}");
    }
}
