//! `auth:`, `owned_by:` and `claim:`: who the subjects are, what is theirs, and how an
//! unowned instance becomes someone's.

use super::Lowering;
use crate::ir::*;
use crate::names;

const ACCESS_TTL: std::ops::RangeInclusive<i64> = 30..=86_400;
const REFRESH_TTL: std::ops::RangeInclusive<i64> = 60..=31_536_000;

impl Lowering<'_> {
    pub(super) fn lower_auth(&mut self, services: &[Service]) -> Option<Auth> {
        let auth = self.lower_auth_section(services);
        self.check_owned_by(auth.as_ref());
        self.check_claims(services, auth.as_ref());
        auth
    }

    fn lower_auth_section(&mut self, services: &[Service]) -> Option<Auth> {
        let raw = self.raw.auth.as_ref()?;
        let Some(svc) = services.iter().find(|s| s.name == raw.identity) else {
            if !self.raw.services.contains_key(&raw.identity) {
                let names: Vec<&String> = self.raw.services.keys().collect();
                self.d.error(
                    self.pos.value("auth.identity"),
                    format!(
                        "unknown service `{}` in auth.identity: expected one of {}",
                        raw.identity,
                        super::list(names)
                    ),
                );
            }
            return None;
        };
        if svc.pattern != Pattern::CqsEs {
            self.d.error(
                self.pos.value("auth.identity"),
                format!(
                    "auth.identity `{}` must be a cqs-es service (its database keeps the credentials beside the subjects' events)",
                    svc.name
                ),
            );
            return None;
        }
        let register = self.identity_command(
            svc,
            "register",
            Some(&raw.register),
            |_, op| op.input.iter().any(|f| f.ty == FieldType::Email),
            "takes an `email` field (the login)",
        )?;
        let id = format!("{}_id", names::snake(&svc.entity));
        let forget = match &raw.forget {
            None => None,
            Some(_) => Some(self.identity_command(
                svc,
                "forget",
                raw.forget.as_ref(),
                |_, op| op.input.iter().any(|f| f.name == id),
                &format!("takes `{id}`"),
            )?),
        };
        let access = self
            .ttl("auth.access_ttl_secs", raw.access_ttl_secs, ACCESS_TTL)
            .unwrap_or(DEFAULT_ACCESS_TTL_SECS);
        let refresh = self
            .ttl("auth.refresh_ttl_secs", raw.refresh_ttl_secs, REFRESH_TTL)
            .unwrap_or(DEFAULT_REFRESH_TTL_SECS);
        if refresh <= access {
            self.d.error(
                self.pos.key("auth"),
                "auth.refresh_ttl_secs must be longer than auth.access_ttl_secs",
            );
        }
        let deployable = svc.operations.first().map(|o| o.deployable.clone())?;
        Some(Auth {
            service: svc.name.clone(),
            entity: svc.entity.clone(),
            deployable,
            register,
            forget,
            access_ttl_secs: access,
            refresh_ttl_secs: refresh,
        })
    }

    fn identity_command(
        &mut self,
        svc: &Service,
        key: &str,
        name: Option<&String>,
        ok: impl Fn(&Service, &Operation) -> bool,
        needs: &str,
    ) -> Option<String> {
        let name = name?;
        let span = self.pos.value(&format!("auth.{key}"));
        match svc.operation(name) {
            Some(op) if op.kind == OperationKind::Command && ok(svc, op) => Some(name.clone()),
            Some(_) => {
                self.d.error(
                    span,
                    format!(
                        "auth.{key} `{name}` must be a command of `{}` that {needs}",
                        svc.name
                    ),
                );
                None
            }
            None => {
                let commands: Vec<&String> = svc
                    .operations
                    .iter()
                    .filter(|o| o.kind == OperationKind::Command)
                    .map(|o| &o.name)
                    .collect();
                self.d.error(
                    span,
                    format!(
                        "unknown command `{name}` in auth.{key}: expected one of {}",
                        super::list(commands)
                    ),
                );
                None
            }
        }
    }

    fn ttl(
        &mut self,
        path: &str,
        v: Option<i64>,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<u32> {
        let v = v?;
        if !range.contains(&v) {
            self.d.error(
                self.pos.value(path),
                format!(
                    "{path} {v} is out of range: {} to {} seconds",
                    range.start(),
                    range.end()
                ),
            );
            return None;
        }
        u32::try_from(v).ok()
    }

    fn check_owned_by(&mut self, auth: Option<&Auth>) {
        for (name, e) in &self.raw.entities {
            let Some(field) = &e.owned_by else { continue };
            let span = self.pos.value(&format!("entities.{name}.owned_by"));
            let Some(auth) = auth else {
                if self.raw.auth.is_none() {
                    self.d
                        .error(span, "owned_by needs `auth:` (whose subjects own things)");
                }
                continue;
            };
            let ty = self
                .entity(name)
                .and_then(|e| e.field(field))
                .map(|f| f.ty.clone());
            if ty != Some(FieldType::Ref(auth.entity.clone())) {
                self.d.error(
                    span,
                    format!(
                        "owned_by `{field}` must be a field of {name} that is a `ref: {}` (the subject)",
                        auth.entity
                    ),
                );
            }
        }
    }

    fn check_claims(&mut self, services: &[Service], auth: Option<&Auth>) {
        for (name, s) in &self.raw.services {
            let Some(claim) = &s.claim else { continue };
            let span = self.pos.value(&format!("services.{name}.claim"));
            let Some(svc) = services.iter().find(|x| &x.name == name) else {
                continue;
            };
            let owned_by = self.entity(&svc.entity).and_then(|e| e.owned_by.clone());
            let (Some(_), Some(owned_by)) = (auth, owned_by) else {
                self.d.error(
                    span,
                    format!("claim needs `auth:` and `owned_by:` on {}", svc.entity),
                );
                continue;
            };
            let id = format!("{}_id", names::snake(&svc.entity));
            let mut input: Vec<&str> = svc
                .operation(claim)
                .filter(|o| o.kind == OperationKind::Command)
                .map(|o| o.input.iter().map(|f| f.name.as_str()).collect())
                .unwrap_or_default();
            input.sort_unstable();
            let mut want = vec![id.as_str(), owned_by.as_str()];
            want.sort_unstable();
            if input != want {
                self.d.error(
                    span,
                    format!(
                        "claim `{claim}` must be a command of `{name}` whose input is [{id}, {owned_by}]"
                    ),
                );
            }
        }
    }
}
