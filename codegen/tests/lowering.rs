//! Decisions `lower` takes that every emitter relies on.

use std::path::Path;

const CQRS: &str = r#"system: mini
money: { currency: EUR, minor_units: 2 }
entities:
  Basket:
    fields:
      id: uuid
      note: { type: string, max_len: 20, optional: true }
services:
  basket:
    pattern: cqrs-es
    aggregate: Basket
    event_store: mongodb
    read_model: postgres
    messaging: { broker: kafka, topic: basket.events }
    commands:
      Annotate: { input: [basket_id, note], emits: [Annotated] }
    events:
      Annotated: [note]
    queries:
      ViewBasket: { input: [basket_id] }
      LoadBasket: { input: [basket_id], consistency: strong, audience: internal }
"#;

#[test]
fn strong_queries_are_served_by_the_command_side() {
    let system = codegen::load(Path::new("mini.yaml"), CQRS).expect("valid");
    let svc = &system.services[0];
    let view = svc.operation("ViewBasket").expect("view");
    let load = svc.operation("LoadBasket").expect("load");
    assert_eq!(
        (view.deployable.as_str(), view.rpc.service.as_str()),
        ("basket-query", "BasketQueryService")
    );
    assert_eq!(
        (load.deployable.as_str(), load.rpc.service.as_str()),
        ("basket-command", "BasketCommandService")
    );
    let command = system
        .deployables
        .iter()
        .find(|d| d.name == "basket-command")
        .expect("command");
    assert_eq!(
        command.grpc_services,
        ["mini.basket.v1.BasketCommandService"]
    );
    let query = system
        .deployables
        .iter()
        .find(|d| d.name == "basket-query")
        .expect("query");
    assert_eq!(query.grpc_services, ["mini.basket.v1.BasketQueryService"]);
}

#[test]
fn consistency_is_checked() {
    let bad = CQRS.replace("consistency: strong", "consistency: immediate");
    let e = codegen::load(Path::new("mini.yaml"), &bad)
        .expect_err("rejected")
        .to_string();
    assert!(
        e.contains("mini.yaml:21:") && e.contains("unknown consistency `immediate`"),
        "{e}"
    );
}
