//! With `auth:`: each root field's guard (audience, the caller's id standing in for
//! arguments that name a subject, instances that must be the caller's), and the
//! session fields (`login`, `refreshSession`, `logout`).

use super::{Builder, Exposed, arg, built, named};
use crate::ir::*;
use crate::names;

impl<'a> Builder<'a> {
    /// The request fields that name the subject: the caller's id fills them.
    pub(super) fn caller_fields(&self, e: Exposed<'a>) -> Vec<String> {
        let Some(auth) = &self.sys.auth else {
            return Vec::new();
        };
        if e.op.audience != Audience::Customer {
            return Vec::new();
        }
        let subject = FieldType::Ref(auth.entity.clone());
        let entity = self.entity(&e.svc.entity).ok();
        let Ok(message) = self.message(e, &e.op.rpc.request) else {
            return Vec::new();
        };
        message
            .fields
            .iter()
            .filter(|f| {
                f.check.as_ref().is_some_and(|c| c.ty == subject)
                    || (e.op.filter.contains(&f.name)
                        && entity
                            .and_then(|en| en.field(&f.name))
                            .is_some_and(|x| x.ty == subject))
            })
            .map(|f| f.name.clone())
            .collect()
    }

    /// The guard of a root field's call, and the caller's id in its subject fields.
    pub(super) fn guard(
        &self,
        e: Exposed<'a>,
        call: &mut OperationCall,
        callers: &[String],
    ) -> Result<(), String> {
        let Some(auth) = &self.sys.auth else {
            return Ok(());
        };
        for rf in call
            .request
            .iter_mut()
            .filter(|r| callers.contains(&r.field))
        {
            rf.source = ValueSource::Caller {
                arg: names::camel(&rf.field),
            };
        }
        let identity = e.svc.name == auth.service;
        let credentials = if identity && e.op.name == auth.register {
            e.op.input
                .iter()
                .find(|f| f.ty == FieldType::Email)
                .map(|f| f.name.clone())
        } else {
            None
        };
        call.guard = Some(Guard {
            audience: e.op.audience,
            owned: self.owned_checks(e, auth)?,
            credentials,
            forget: identity && auth.forget.as_ref() == Some(&e.op.name),
        });
        Ok(())
    }

    fn owned_checks(&self, e: Exposed<'a>, auth: &Auth) -> Result<Vec<OwnedCheck>, String> {
        if e.op.audience != Audience::Customer {
            return Ok(Vec::new());
        }
        let by_id = matches!(
            e.op.kind,
            OperationKind::Get | OperationKind::Update | OperationKind::Delete
        );
        let mut out = Vec::new();
        for f in &self.message(e, &e.op.rpc.request)?.fields {
            let target = match f.check.as_ref().map(|c| &c.ty) {
                Some(FieldType::Ref(t)) => t.clone(),
                _ if by_id && f.name == "id" => e.svc.entity.clone(),
                _ => continue,
            };
            if target == auth.entity {
                continue;
            }
            let entity = self.entity(&target)?;
            let Some(owner) = &entity.owned_by else {
                continue;
            };
            out.push(OwnedCheck {
                field: f.name.clone(),
                entity: target.clone(),
                owner: names::camel(owner),
                // A read never claims: an absent instance is NOT_FOUND, not opened.
                claim: (!e.op.kind.is_read())
                    .then(|| self.claim(&target, owner))
                    .flatten(),
            });
        }
        Ok(out)
    }

    fn claim(&self, entity: &str, owner: &str) -> Option<ClaimCall> {
        let svc = self
            .sys
            .services
            .iter()
            .find(|s| s.entity == entity && s.claim.is_some())?;
        let op = svc.operation(svc.claim.as_deref()?)?;
        Some(ClaimCall {
            service: svc.name.clone(),
            deployable: op.deployable.clone(),
            rpc: op.rpc.clone(),
            id_field: format!("{}_id", names::snake(entity)),
            owner_field: owner.to_string(),
        })
    }

    /// `login`, `refreshSession` and `logout`, with `LoginInput` and `Session`.
    pub(super) fn session_fields(&mut self, auth: &Auth) -> Vec<RootField> {
        let subject = names::camel(&format!("{}_id", names::snake(&auth.entity)));
        self.inputs.push(InputType {
            name: "LoginInput".into(),
            doc: Some("An email and password registered before.".into()),
            fields: vec![
                arg("email", None, named("String", true)),
                arg("password", None, named("String", true)),
            ],
        });
        self.payloads.push(session_type(&auth.entity, &subject));
        let root = |name: &str, doc: &str, args, ty, session| RootField {
            name: name.into(),
            doc: Some(doc.into()),
            args,
            ty,
            call: None,
            session: Some(session),
        };
        vec![
            root(
                "login",
                "A session for an email and password: send `accessToken` as `Authorization: Bearer …`; \
                 `refreshSession` renews it. A wrong email or password is UNAUTHENTICATED.",
                vec![arg("input", None, named("LoginInput", true))],
                named("Session", true),
                SessionField::Login,
            ),
            root(
                "refreshSession",
                "A new session for a refresh token; that token stops working.",
                vec![arg("refreshToken", None, named("String", true))],
                named("Session", true),
                SessionField::Refresh,
            ),
            root(
                "logout",
                "Ends the caller's session: its refresh token stops working at once.",
                Vec::new(),
                named("Boolean", true),
                SessionField::Logout,
            ),
        ]
    }
}

fn session_type(entity: &str, subject: &str) -> ObjectType {
    let roles = GraphqlTypeRef {
        name: "String".into(),
        list: true,
        non_null: true,
    };
    ObjectType {
        name: "Session".into(),
        doc: Some("A logged-in session.".into()),
        notes: Vec::new(),
        source: ObjectSource::Session,
        fields: vec![
            built(
                "accessToken",
                named("String", true),
                "Send as `Authorization: Bearer …`.",
            ),
            built(
                "expiresIn",
                named("Int", true),
                "Seconds the access token is valid for.",
            ),
            built(
                "refreshToken",
                named("String", true),
                "For `refreshSession`; keep it secret.",
            ),
            built(
                "refreshExpiresIn",
                named("Int", true),
                "Seconds the session lasts without a refresh.",
            ),
            built(
                subject,
                named("ID", true),
                &format!("The {entity} logged in."),
            ),
            built(
                "roles",
                roles,
                "What the session may do: `customer`, `back-office`.",
            ),
        ],
    }
}

/// Arguments standing for the caller become optional: omitted, they are the caller.
pub(super) fn optional_callers(args: &mut [GraphqlArg], callers: &[String]) {
    for a in args.iter_mut() {
        if callers.iter().any(|c| names::camel(c) == a.name) {
            a.ty.non_null = false;
            let note = "Omit it: it is the caller's; another's is FORBIDDEN.";
            a.doc = Some(match &a.doc {
                Some(d) => format!("{d} {note}"),
                None => note.to_string(),
            });
        }
    }
}

/// The register command's password argument.
pub(super) fn password_arg() -> GraphqlArg {
    arg(
        "password",
        Some("The password to log in with: 8 to 128 characters.".into()),
        named("String", true),
    )
}
