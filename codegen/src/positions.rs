//! Where each key and value sits in the YAML text.
//!
//! serde_yaml gives typed values but no positions, so a second, event-level pass over
//! the same text records the span of every mapping key and value by its path
//! (`entities.Product.fields.price`; sequence items by index: `bff.graphql.queries.2`).
//! It also catches duplicate keys, which typed maps would silently merge.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use crate::diag::Diagnostics;
use crate::ir::Span;

#[derive(Debug, Default)]
pub struct Positions {
    keys: HashMap<String, Span>,
    values: HashMap<String, Span>,
}

impl Positions {
    /// Span of the key at `path` (or of the sequence item); the document start if unknown.
    pub fn key(&self, path: &str) -> Span {
        self.keys
            .get(path)
            .or_else(|| self.values.get(path))
            .copied()
            .unwrap_or_else(|| self.nearest(path))
    }

    /// Span of the value at `path`; the key's span if the value is unknown.
    pub fn value(&self, path: &str) -> Span {
        self.values
            .get(path)
            .copied()
            .unwrap_or_else(|| self.key(path))
    }

    /// The first key named `key` at or below `prefix` (document order).
    pub fn find_key(&self, prefix: &str, key: &str) -> Option<Span> {
        let under = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}.")
        };
        self.keys
            .iter()
            .filter(|(p, _)| {
                p.starts_with(&under) && (p.ends_with(&format!(".{key}")) || p.as_str() == key)
            })
            .map(|(_, s)| *s)
            .min()
    }

    fn nearest(&self, path: &str) -> Span {
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('.') {
            if let Some(s) = self.keys.get(parent) {
                return *s;
            }
            p = parent;
        }
        Span { line: 1, column: 1 }
    }

    /// Parses `text` for positions. YAML syntax errors are left to serde_yaml, which
    /// reports them with their own position; here they just end the scan.
    pub fn scan(text: &str, diags: &mut Diagnostics) -> Positions {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut builder, false);
        for (path, span) in builder.duplicates {
            let (parent, key) = path.rsplit_once('.').unwrap_or(("", &path));
            let within = if parent.is_empty() {
                "the top level".to_string()
            } else {
                format!("`{parent}`")
            };
            diags.error(
                span,
                format!("duplicate name `{key}` in {within}: each name may appear once"),
            );
        }
        builder.positions
    }
}

enum Frame {
    Map {
        path: String,
        pending_key: Option<String>,
        seen: Vec<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    positions: Positions,
    duplicates: Vec<(String, Span)>,
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

impl Builder {
    /// Called when a value (scalar or container) starts; returns its path.
    fn value_path(&mut self, span: Span) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = join(path, &next.to_string());
                *next += 1;
                self.positions.values.insert(p.clone(), span);
                Some(p)
            }
            Some(Frame::Map {
                pending_key, path, ..
            }) => {
                let key = pending_key.take()?;
                let p = join(path, &key);
                self.positions.values.insert(p.clone(), span);
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let span = Span {
            line: mark.line() as u32,
            column: mark.col() as u32 + 1,
        };
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map {
                    pending_key: pending_key @ None,
                    path,
                    seen,
                }) = self.stack.last_mut()
                {
                    let p = join(path, &value);
                    if seen.contains(&value) {
                        self.duplicates.push((p.clone(), span));
                    } else {
                        seen.push(value.clone());
                        self.positions.keys.insert(p, span);
                    }
                    *pending_key = Some(value);
                } else {
                    self.value_path(span);
                }
            }
            Event::MappingStart(..) => {
                let path = self.value_path(span).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    pending_key: None,
                    seen: Vec::new(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(span).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                self.value_path(span);
            }
            _ => {}
        }
    }
}
