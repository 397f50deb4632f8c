//! The proto package of one service: messages and RPCs derived from its operations.

use crate::ir::*;
use crate::names;

pub fn build(system: &str, svc: &Service, entities: &[Entity]) -> Result<ProtoPackage, String> {
    let find = |n: &str| entities.iter().find(|e| e.name == n);
    let mut b = Builder {
        messages: Vec::new(),
        uses_timestamp: false,
    };

    // Entity messages: the service's entity, what it owns, and any other output.
    let mut wanted: Vec<String> = vec![svc.entity.clone()];
    for o in &svc.operations {
        if let Some(out) = &o.output
            && !wanted.contains(out)
        {
            wanted.push(out.clone());
        }
    }
    let mut i = 0;
    while i < wanted.len() {
        if let Some(e) = find(&wanted[i]) {
            for r in e.relations.iter().filter(|r| r.owned) {
                if !wanted.contains(&r.target) {
                    wanted.push(r.target.clone());
                }
            }
        }
        i += 1;
    }
    for name in &wanted {
        let Some(e) = find(name) else { continue };
        let mut fields: Vec<MessageField> = e.fields.iter().map(|f| b.field(f)).collect();
        let after_fields = e.fields.iter().map(|f| f.number).max().unwrap_or(0) + 1;
        for (n, r) in (after_fields..).zip(e.relations.iter().filter(|r| r.owned)) {
            fields.push(MessageField {
                name: r.name.clone(),
                ty: ProtoType::Message(r.target.clone()),
                label: if r.cardinality.is_many() {
                    Label::Repeated
                } else {
                    Label::Optional
                },
                number: n,
                doc: None,
                check: None,
                renamed_from: None,
            });
        }
        b.push(Message::new(name, e.doc.clone(), fields))?;
    }

    let entity = find(&svc.entity).ok_or_else(|| format!("unknown entity `{}`", svc.entity))?;
    let var = |e: &str| names::snake(e);
    for o in &svc.operations {
        let out_msg = |e: &str| {
            MessageField::new(
                &var(e),
                ProtoType::Message(e.to_string()),
                Label::Optional,
                1,
            )
        };
        let (req, resp): (Vec<MessageField>, Vec<MessageField>) = match o.kind {
            OperationKind::List => {
                let mut req: Vec<MessageField> = o
                    .filter
                    .iter()
                    .filter_map(|f| entity.field(f))
                    .enumerate()
                    .map(|(i, f)| {
                        let mut m = b.field(f);
                        m.label = Label::Optional;
                        m.number = i as u32 + 1;
                        m
                    })
                    .collect();
                let n = req.len() as u32;
                let ps = o.page_size.unwrap_or(PageSize {
                    default: 20,
                    max: 100,
                });
                let mut page_size =
                    MessageField::new("page_size", ProtoType::Int32, Label::Required, n + 1).doc(
                        format!(
                            "At most this many items; 0 means {}, more than {} is an error.",
                            ps.default, ps.max
                        ),
                    );
                page_size.check = Some(Check {
                    ty: FieldType::Int,
                    constraints: Constraints {
                        min: Some(0),
                        max: Some(ps.max as i64),
                        ..Constraints::default()
                    },
                });
                req.push(page_size);
                req.push(
                    MessageField::new("page_token", ProtoType::String, Label::Required, n + 2).doc(
                        "Empty for the first page, else a previous response's next_page_token.",
                    ),
                );
                let resp = vec![
                    MessageField::new(
                        &names::plural(&var(&entity.name)),
                        ProtoType::Message(entity.name.clone()),
                        Label::Repeated,
                        1,
                    ),
                    MessageField::new("next_page_token", ProtoType::String, Label::Required, 2)
                        .doc("Empty when this is the last page."),
                ];
                (req, resp)
            }
            OperationKind::Get => (vec![id_field(1)], vec![out_msg(&entity.name)]),
            OperationKind::Create | OperationKind::Update => {
                let mut req = Vec::new();
                if o.kind == OperationKind::Update {
                    req.push(id_field(1));
                }
                for f in entity
                    .fields
                    .iter()
                    .filter(|f| !f.readonly && f.name != "id")
                {
                    let mut m = b.field(f);
                    m.number = req.len() as u32 + 1;
                    req.push(m);
                }
                for r in entity.relations.iter().filter(|r| r.owned) {
                    let label = if r.cardinality.is_many() {
                        Label::Repeated
                    } else {
                        Label::Optional
                    };
                    req.push(MessageField::new(
                        &r.name,
                        ProtoType::Message(r.target.clone()),
                        label,
                        req.len() as u32 + 1,
                    ));
                }
                (req, vec![out_msg(&entity.name)])
            }
            OperationKind::Delete => (vec![id_field(1)], Vec::new()),
            OperationKind::BatchGet => {
                let mut ids = id_field(1);
                ids.name = "ids".into();
                ids.label = Label::Repeated;
                ids.doc = Some(format!(
                    "At most {BATCH_GET_MAX} ids; the answer holds the items that exist, in no particular order."
                ));
                let items = MessageField::new(
                    &names::plural(&var(&entity.name)),
                    ProtoType::Message(entity.name.clone()),
                    Label::Repeated,
                    1,
                );
                (vec![ids], vec![items])
            }
            OperationKind::Custom => {
                let req = o.input.iter().map(|f| b.field(f)).collect();
                let resp = o.output.as_deref().map(out_msg).into_iter().collect();
                (req, resp)
            }
            OperationKind::Command => {
                let mut req: Vec<MessageField> = o.input.iter().map(|f| b.field(f)).collect();
                let mut expected = MessageField::new("expected_version", ProtoType::Int64, Label::Optional, req.len() as u32 + 1)
                    .doc("Fail with ABORTED unless the aggregate is at this version (0: does not exist yet).");
                expected.check = Some(Check {
                    ty: FieldType::Money,
                    constraints: Constraints {
                        min: Some(0),
                        ..Constraints::default()
                    },
                });
                req.push(expected);
                let resp = vec![
                    MessageField::new(
                        &format!("{}_id", var(&entity.name)),
                        ProtoType::String,
                        Label::Required,
                        1,
                    ),
                    MessageField::new("version", ProtoType::Int64, Label::Required, 2)
                        .doc("The aggregate's version after this command."),
                ];
                (req, resp)
            }
            OperationKind::Query => {
                let req = o.input.iter().map(|f| b.field(f)).collect();
                let out = o.output.clone().unwrap_or_else(|| entity.name.clone());
                let resp = vec![
                    out_msg(&out),
                    MessageField::new("version", ProtoType::Int64, Label::Required, 2)
                        .doc("The version of the state returned."),
                ];
                (req, resp)
            }
        };
        let mut req = req;
        if o.takes_idempotency_key() {
            req.push(idempotency_key(req.len() as u32 + 1));
        }
        b.push(Message::new(&o.rpc.request, None, req))?;
        b.push(Message::new(&o.rpc.response, None, resp))?;
    }

    if svc.is_event_sourced() {
        for e in &svc.events {
            let fields = e.fields.iter().map(|f| b.field(f)).collect();
            b.push(Message::new(&e.name, e.doc.clone(), fields))?;
        }
        b.uses_timestamp = true;
        let stream = format!("{}_id", var(&entity.name));
        let envelope = Message {
            name: format!("{}Event", entity.name),
            doc: Some(format!(
                "One event of a {} stream as it travels on the wire (Kafka value, outbox payload).",
                entity.name
            )),
            fields: vec![
                MessageField::new("event_id", ProtoType::String, Label::Required, 1),
                MessageField::new(&stream, ProtoType::String, Label::Required, 2),
                MessageField::new("version", ProtoType::Int64, Label::Required, 3)
                    .doc("Position of this event in its stream, from 1."),
                MessageField::new("occurred_at", ProtoType::Timestamp, Label::Required, 4),
                MessageField::new("correlation_id", ProtoType::String, Label::Required, 5),
                MessageField::new("causation_id", ProtoType::String, Label::Required, 6),
                MessageField::new("schema_version", ProtoType::Uint32, Label::Required, 7),
            ],
            oneof: Some((
                "payload".into(),
                svc.events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        MessageField::new(
                            &var(&e.name),
                            ProtoType::Message(e.name.clone()),
                            Label::Required,
                            10 + i as u32,
                        )
                    })
                    .collect(),
            )),
            reserved_numbers: Vec::new(),
            reserved_names: Vec::new(),
        };
        b.push(envelope)?;
    }

    let mut services: Vec<ProtoService> = Vec::new();
    for o in &svc.operations {
        match services.iter_mut().find(|s| s.name == o.rpc.service) {
            Some(s) => s.methods.push(o.rpc.clone()),
            None => services.push(ProtoService {
                name: o.rpc.service.clone(),
                doc: None,
                methods: vec![o.rpc.clone()],
            }),
        }
    }
    let package = format!("{system}.{}.v1", svc.name);
    Ok(ProtoPackage {
        file: format!("{}/{}.proto", package.replace('.', "/"), svc.name),
        package,
        imports: if b.uses_timestamp {
            vec!["google/protobuf/timestamp.proto".into()]
        } else {
            Vec::new()
        },
        services,
        messages: b.messages,
    })
}

/// The most ids one batch get takes.
pub const BATCH_GET_MAX: usize = 500;

fn id_field(n: u32) -> MessageField {
    let mut f = MessageField::new("id", ProtoType::String, Label::Required, n);
    f.check = Some(Check {
        ty: FieldType::Uuid,
        constraints: Constraints::default(),
    });
    f
}

struct Builder {
    messages: Vec<Message>,
    uses_timestamp: bool,
}

impl Builder {
    fn field(&mut self, f: &Field) -> MessageField {
        let ty = match &f.ty {
            FieldType::Uuid
            | FieldType::Ref(_)
            | FieldType::String
            | FieldType::Text
            | FieldType::Email => ProtoType::String,
            FieldType::Int => ProtoType::Int32,
            FieldType::Money => ProtoType::Int64,
            FieldType::Bool => ProtoType::Bool,
            FieldType::Timestamp => {
                self.uses_timestamp = true;
                ProtoType::Timestamp
            }
        };
        MessageField {
            name: f.name.clone(),
            ty,
            label: if f.optional {
                Label::Optional
            } else {
                Label::Required
            },
            number: f.number,
            doc: f.doc.clone(),
            check: Some(Check {
                ty: f.ty.clone(),
                constraints: f.constraints.clone(),
            }),
            renamed_from: f.renamed_from.clone(),
        }
    }

    fn push(&mut self, m: Message) -> Result<(), String> {
        if self.messages.iter().any(|o| o.name == m.name) {
            return Err(format!(
                "two proto messages would be called `{}`: rename the operation, event or entity",
                m.name
            ));
        }
        self.messages.push(m);
        Ok(())
    }
}

/// The optional key that makes a retried write answer its first result.
fn idempotency_key(number: u32) -> MessageField {
    let mut key = MessageField::new(
        "idempotency_key",
        ProtoType::String,
        Label::Optional,
        number,
    )
    .doc(
        "A retry with the same key (and the same operation) gets the first attempt's answer, \
         never a second effect. Omitted: every call is a new attempt.",
    );
    key.check = Some(Check {
        ty: FieldType::String,
        constraints: Constraints {
            min_len: Some(1),
            max_len: Some(IDEMPOTENCY_KEY_MAX_LEN),
            ..Constraints::default()
        },
    });
    key
}

/// Keys are client-chosen strings: UUIDs, or request ids of the client's own.
pub const IDEMPOTENCY_KEY_MAX_LEN: u32 = 200;

impl Message {
    pub fn new(name: &str, doc: Option<String>, fields: Vec<MessageField>) -> Message {
        Message {
            name: name.to_string(),
            doc,
            fields,
            oneof: None,
            reserved_numbers: Vec::new(),
            reserved_names: Vec::new(),
        }
    }
}

impl MessageField {
    pub fn new(name: &str, ty: ProtoType, label: Label, number: u32) -> MessageField {
        MessageField {
            name: name.to_string(),
            ty,
            label,
            number,
            doc: None,
            check: None,
            renamed_from: None,
        }
    }
    fn doc(mut self, d: impl Into<String>) -> MessageField {
        self.doc = Some(d.into());
        self
    }
}
