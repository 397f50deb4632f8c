//! The generator: spec -> validate -> IR -> emitters.
//!
//! Pure: `load` turns spec text into the IR (or every error in it), `emit::all` turns
//! the IR into file contents, and `generate` does both against the spec lock (pinned
//! wire numbers, incremental migrations, the breaking-change report). Writing files is
//! the caller's business (see xtask).

pub mod diag;
pub mod emit;
mod evolution;
mod graphql_model;
pub mod ir;
pub mod layout;
pub mod lock;
mod lower;
pub mod names;
mod positions;
mod proto_model;
pub mod spec;

use std::path::Path;

pub use diag::{Diagnostic, SpecErrors};
pub use emit::GeneratedFile;
pub use evolution::{Change, GenerateError, Generation, Preserved, Report, generate, lock_path};

use crate::diag::Diagnostics;
use crate::ir::Span;

/// Parses and validates `text` (read from `file`, used in messages) into the IR.
pub fn load(file: &Path, text: &str) -> Result<ir::System, SpecErrors> {
    let fail = |errors| SpecErrors {
        file: file.to_path_buf(),
        errors,
    };
    let mut d = Diagnostics::default();
    let raw: spec::Spec = match serde_yaml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e
                .location()
                .map(|l| Span {
                    line: l.line() as u32,
                    column: l.column() as u32,
                })
                .unwrap_or(Span { line: 1, column: 1 });
            let msg = e.to_string();
            // serde_yaml appends " at line L column C"; the prefix says it already.
            let msg = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            let span = unknown_key_span(text, &msg).unwrap_or(span);
            d.error(span, msg);
            return Err(fail(d.into_sorted()));
        }
    };
    let positions = positions::Positions::scan(text, &mut d);
    let system = lower::lower(&raw, &positions, &mut d);
    if d.is_empty() {
        Ok(system)
    } else {
        Err(fail(d.into_sorted()))
    }
}

/// serde reports an unknown key at its enclosing map (and, through our custom field
/// deserializer, without a position at all); point at the key itself instead.
fn unknown_key_span(text: &str, msg: &str) -> Option<Span> {
    let (path, rest) = msg.split_once(": unknown field `")?;
    let key = rest.split('`').next()?;
    let positions = positions::Positions::scan(text, &mut Diagnostics::default());
    positions.find_key(path, key)
}

/// The whole pipeline on untrusted bytes, as the fuzz target (`codegen/fuzz`) and the
/// corpus test run it: a spec is either generated or refused with errors that each
/// have a spec position. Anything else is a generator bug, described in the `Err`.
pub fn generate_untrusted(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    match generate(Path::new("fuzz.yaml"), &text, None, false) {
        Ok(_) => Ok(()),
        Err(GenerateError::Spec(e)) => match e.errors.iter().find(|d| d.span.line == 0) {
            Some(d) => Err(format!("spec error without a position: {}", d.message)),
            None if e.errors.is_empty() => Err("spec refused with no error".into()),
            None => Ok(()),
        },
        Err(e) => Err(format!("internal error: {e}")),
    }
}
