//! Spec errors: every one names the file, line and column and says what was expected.

use std::fmt;
use std::path::PathBuf;

use crate::ir::Span;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Span,
    pub message: String,
}

/// All the errors found in one spec, sorted by position.
#[derive(Debug, thiserror::Error)]
pub struct SpecErrors {
    pub file: PathBuf,
    pub errors: Vec<Diagnostic>,
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file.display(),
                d.span.line,
                d.span.column,
                d.message
            )?;
        }
        if self.errors.len() > 1 {
            write!(
                f,
                "\n{} errors in {}",
                self.errors.len(),
                self.file.display()
            )?;
        }
        Ok(())
    }
}

/// Collects diagnostics while lowering, so that one run reports every problem.
#[derive(Debug, Default)]
pub struct Diagnostics {
    errors: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, span: Span, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            span,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.errors
            .sort_by(|a, b| a.span.cmp(&b.span).then(a.message.cmp(&b.message)));
        self.errors.dedup();
        self.errors
    }
}
