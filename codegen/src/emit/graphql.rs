//! (in progress)

use crate::emit::{EmitError, GeneratedFile};
use crate::ir::System;

pub fn emit(_system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    Ok(Vec::new())
}
