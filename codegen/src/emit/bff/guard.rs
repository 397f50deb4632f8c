//! A root field's guard as resolver code: who may call (`rt::allow`), instances that
//! must be the caller's or claimed by them (`rt::owned`), the register command's
//! password and the forget command's ending of the caller's sessions.

use heck::ToSnakeCase;
use proc_macro2::TokenStream;
use quote::quote;

use super::{EmitError, crate_ident, ident};
use crate::ir::*;

#[derive(Default)]
pub(super) struct Parts {
    pub allow: TokenStream,
    pub password: TokenStream,
    pub checks: TokenStream,
    pub keep_email: TokenStream,
    pub credentials: TokenStream,
    pub forget: TokenStream,
}

pub(super) fn parts(c: &OperationCall) -> Result<Parts, EmitError> {
    let Some(g) = &c.guard else {
        return Ok(Parts::default());
    };
    let audience = match g.audience {
        Audience::Public => quote!(Public),
        Audience::Customer => quote!(Customer),
        Audience::BackOffice => quote!(BackOffice),
        Audience::Internal => {
            return Err(EmitError::Other(format!("`{}` is internal", c.operation)));
        }
    };
    let uses_caller = g.forget
        || !g.owned.is_empty()
        || c.request
            .iter()
            .any(|f| matches!(f.source, ValueSource::Caller { .. }));
    let allow = if uses_caller {
        quote!(let caller = rt::allow(&ctx, rt::Audience::#audience)?;)
    } else {
        quote!(rt::allow(&ctx, rt::Audience::#audience)?;)
    };
    let mut parts = Parts {
        allow,
        ..Parts::default()
    };
    for o in &g.owned {
        parts.checks.extend(owned_check(c, o));
    }
    if let Some(email) = &g.credentials {
        let email = super::super::ident(email);
        let CallOutput::CommandPayload { id, .. } = &c.output else {
            return Err(EmitError::Other(format!(
                "`{}` registers but returns no id",
                c.operation
            )));
        };
        let id = super::super::ident(id);
        parts.password = quote!(let password = a.password("password"););
        parts.keep_email = quote!(let email = req.#email.clone(););
        parts.credentials =
            quote!(rt::auth::set_credentials(&ctx, &r.#id, &email, password).await?;);
    }
    if g.forget {
        parts.forget = quote!(rt::auth::forget(&ctx, &caller).await?;);
    }
    Ok(parts)
}

fn label_of(system: &System, service: &str, message: &str, field: &str) -> Label {
    system
        .services
        .iter()
        .find(|s| s.name == service)
        .and_then(|s| s.proto.messages.iter().find(|m| m.name == message))
        .and_then(|m| m.fields.iter().find(|f| f.name == field))
        .map_or(Label::Required, |f| f.label)
}

fn owned_check(c: &OperationCall, o: &OwnedCheck) -> TokenStream {
    let field = super::super::ident(&o.field);
    let helper = helper_name(o);
    let optional = c
        .request
        .iter()
        .find(|f| f.field == o.field)
        .is_some_and(|f| f.label == Label::Optional);
    if optional {
        quote!(if let Some(id) = req.#field.as_deref() { super::#helper(&ctx, &caller, id).await?; })
    } else {
        quote!(super::#helper(&ctx, &caller, req.#field.as_str()).await?;)
    }
}

/// `own_cart` (checks, never claims) or `own_or_claim_cart`.
fn helper_name(o: &OwnedCheck) -> proc_macro2::Ident {
    let entity = o.entity.to_snake_case();
    match o.claim {
        Some(_) => quote::format_ident!("own_or_claim_{entity}"),
        None => quote::format_ident!("own_{entity}"),
    }
}

/// One function per kind of ownership check the guards make: whether the caller owns
/// the instance (through its loader), and for writes the claim of an unowned one.
pub(super) fn helpers(system: &System) -> Result<TokenStream, EmitError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = TokenStream::new();
    let checks = system
        .graphql
        .queries
        .iter()
        .chain(&system.graphql.mutations)
        .filter_map(|r| r.call.as_ref()?.guard.as_ref())
        .flat_map(|g| &g.owned);
    for o in checks {
        let name = helper_name(o);
        if !seen.insert(name.to_string()) {
            continue;
        }
        let kind = o.entity.to_snake_case();
        let loader = ident(&o.entity);
        let owner = &o.owner;
        let claimable = o.claim.is_some();
        let check = quote!(rt::owned::<Loaders, _>(ctx, caller, #kind, id, |l| &l.#loader, #owner, #claimable).await?);
        let body = match &o.claim {
            Some(claim) => {
                let claim = claim_call(system, claim)?;
                quote!(if #check { #claim })
            }
            None => quote!(#check;),
        };
        let doc = format!(
            " FORBIDDEN unless the {kind} `id` is the caller's (or, claimable, nobody's yet)."
        );
        out.extend(quote! {
            #[doc = #doc]
            async fn #name(ctx: &rt::ResolverContext<'_>, caller: &Option<rt::Principal>, id: &str) -> rt::Result<()> {
                #body
                Ok(())
            }
        });
    }
    Ok(out)
}

fn claim_call(system: &System, claim: &ClaimCall) -> Result<TokenStream, EmitError> {
    let api = &system.graphql;
    let up = api
        .upstreams
        .iter()
        .find(|u| u.deployable == claim.deployable)
        .ok_or_else(|| EmitError::Other(format!("no upstream `{}`", claim.deployable)))?;
    let up = ident(&up.deployable);
    let krate = crate_ident(system, &claim.service);
    let request = super::super::ident(&claim.rpc.request);
    let method = super::super::ident(claim.rpc.method.to_snake_case());
    let value = |field: &str, v: TokenStream| {
        let name = super::super::ident(field);
        match label_of(system, &claim.service, &claim.rpc.request, field) {
            Label::Optional => quote!(#name: Some(#v),),
            _ => quote!(#name: #v,),
        }
    };
    let id = value(&claim.id_field, quote!(id.to_string()));
    let owner = value(&claim.owner_field, quote!(rt::subject(&caller)?));
    let service = &claim.service;
    Ok(quote! {
        let claim = #krate::pb::#request { #id #owner ..Default::default() };
        let mut client = rt::data::<Upstreams>(ctx)?.#up.clone();
        rt::claimed(#service, client.#method(rt::grpc(ctx, claim)).await)?;
    })
}
