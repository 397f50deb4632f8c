//! MongoDB event stores: `mongo/<database>.json` for every event store.
//!
//! The shape a service feeds to `createIndexes`, collection by collection:
//! `{ "_generated", "database", "service", "collections": [ { "name", "doc", "indexes":
//! [ { "name", "key": { field: 1 | -1 }, "unique" } ] } ] }`. JSON has no comments, so the
//! @generated notice is the first key. Keys keep this order (structs serialize in field
//! order, `key` in index-column order), so the output is byte-stable.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::emit::{EmitError, GeneratedFile, header};
use crate::ir::{EventStore, System};

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    system
        .event_stores
        .iter()
        .map(|store| {
            let doc = StoreDoc::new(store);
            let mut contents = serde_json::to_string_pretty(&doc)
                .map_err(|e| EmitError::Other(format!("event store `{}`: {e}", store.database)))?;
            contents.push('\n');
            Ok(GeneratedFile {
                path: format!("mongo/{}.json", store.database),
                contents,
            })
        })
        .collect()
}

#[derive(Serialize)]
struct StoreDoc<'a> {
    #[serde(rename = "_generated")]
    generated: String,
    database: &'a str,
    service: &'a str,
    collections: Vec<CollectionDoc<'a>>,
}

#[derive(Serialize)]
struct CollectionDoc<'a> {
    name: &'a str,
    doc: &'a str,
    indexes: Vec<IndexDoc<'a>>,
}

#[derive(Serialize)]
struct IndexDoc<'a> {
    name: &'a str,
    key: Keys<'a>,
    unique: bool,
}

/// An index key document: field -> 1 or -1, in index order (which matters).
struct Keys<'a>(&'a [(String, i32)]);

impl Serialize for Keys<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (field, dir) in self.0 {
            m.serialize_entry(field, dir)?;
        }
        m.end()
    }
}

impl<'a> StoreDoc<'a> {
    fn new(store: &'a EventStore) -> StoreDoc<'a> {
        StoreDoc {
            generated: header("").trim().to_string(),
            database: &store.database,
            service: &store.service,
            collections: store
                .collections
                .iter()
                .map(|c| CollectionDoc {
                    name: &c.name,
                    doc: &c.doc,
                    indexes: c
                        .indexes
                        .iter()
                        .map(|i| IndexDoc {
                            name: &i.name,
                            key: Keys(&i.keys),
                            unique: i.unique,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
