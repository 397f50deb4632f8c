//! Prints the IR of a spec: `cargo run -p codegen --example dump_ir -- spec/shop.yaml`.
fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "spec/shop.yaml".into());
    let text = std::fs::read_to_string(&path).expect("spec readable");
    match codegen::load(std::path::Path::new(&path), &text) {
        Ok(ir) => println!("{ir:#?}"),
        Err(e) => eprintln!("{e}"),
    }
}
