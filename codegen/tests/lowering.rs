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

#[test]
fn deployables_name_their_package_binary_arguments_and_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("spec/shop.yaml")).expect("spec");
    let system = codegen::load(Path::new("shop.yaml"), &text).expect("valid");
    let row = |name: &str| {
        let d = system
            .deployables
            .iter()
            .find(|d| d.name == name)
            .expect(name);
        let settings: Vec<String> = d
            .settings
            .iter()
            .map(|s| format!("{}={:?}", s.env, s.kind))
            .collect();
        (
            d.package.as_str(),
            d.binary.as_str(),
            d.args.join(" "),
            settings,
        )
    };
    // Product is CRUD without a custom use case: generated whole.
    let (package, binary, args, settings) = row("product");
    assert_eq!(
        (package, binary, args.as_str()),
        ("shop-product", "product-service", "")
    );
    assert_eq!(
        settings,
        [
            "LISTEN_ADDR=Listen",
            "DATABASE_URL=Database(\"shop_product\")"
        ]
    );
    // Order has `Checkout` (custom): its hand-written crate.
    let (package, binary, _, settings) = row("order");
    assert_eq!((package, binary), ("order-service", "order-service"));
    assert_eq!(
        settings,
        [
            "LISTEN_ADDR=Listen",
            "DATABASE_URL=Database(\"shop_order\")",
            "PRODUCT_URL=Upstream(\"product\")",
            "CART_COMMAND_URL=Upstream(\"cart-command\")",
            "CART_QUERY_URL=Upstream(\"cart-query\")",
        ]
    );
    let (package, binary, args, settings) = row("cart-event-handler");
    assert_eq!(
        (package, binary, args.as_str()),
        ("cart-service", "cart-service", "--role event-handler")
    );
    assert_eq!(
        settings,
        [
            "LISTEN_ADDR=Listen",
            "DATABASE_URL=Database(\"shop_cart_read\")",
            "EVENT_STORE_URL=EventStore(\"shop_cart_events\")",
            "EVENT_STORE_DATABASE=EventStoreDatabase(\"shop_cart_events\")",
            "BUS_URL=Bus",
            "CART_TOPIC=Topic(\"cart.events\")",
            "CONSUMER_GROUP=ConsumerGroup(\"cart-event-handler\")",
        ]
    );
    // The command side relays its events and reads the user service's in a group of
    // its own.
    let (_, _, _, settings) = row("cart-command");
    assert_eq!(
        settings[2..6],
        [
            "EVENT_STORE_DATABASE=EventStoreDatabase(\"shop_cart_events\")",
            "BUS_URL=Bus",
            "CART_TOPIC=Topic(\"cart.events\")",
            "USER_TOPIC=Topic(\"user.events\")",
        ]
    );
    assert_eq!(
        settings[6],
        "USER_EVENTS_GROUP=ConsumerGroup(\"cart-command-user-events\")"
    );
    let (package, binary, args, _) = row("bff");
    assert_eq!((package, binary, args.as_str()), ("shop-bff", "bff", ""));
}
