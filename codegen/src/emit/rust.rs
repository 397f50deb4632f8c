//! One crate per service under `generated/rust/<service>/`: the prost/tonic code of its
//! proto package (compiled in memory with protox, no `protoc`), request validation from
//! the spec's constraints, the use-case traits hand-written code implements, the glue
//! that serves them over gRPC, and for event-sourced services the command and event
//! types and the aggregate trait.
//!
//! Rust is built with `quote` and printed with `prettyplease`; only the fixed,
//! rustfmt-stable `lib.rs` and `Cargo.toml` come from templates.

use std::cell::RefCell;
use std::collections::BTreeSet;

use heck::{ToSnakeCase, ToUpperCamelCase};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::{EmitError, GeneratedFile, Memo};
use crate::ir::*;

pub fn emit(system: &System) -> Result<Vec<GeneratedFile>, EmitError> {
    let protos: Vec<GeneratedFile> = super::proto::emit(system)?
        .into_iter()
        .filter_map(|f| {
            f.path.strip_prefix("proto/").map(|p| GeneratedFile {
                path: p.to_string(),
                contents: f.contents,
            })
        })
        .collect();
    let mut out = Vec::new();
    for svc in &system.services {
        let dir = format!("rust/{}", svc.name);
        let (pb, descriptor) = compile_proto(&protos, &svc.proto)?;
        out.push(GeneratedFile {
            path: format!("{dir}/Cargo.toml"),
            contents: cargo_toml(system, svc)?,
        });
        out.push(GeneratedFile {
            path: format!("{dir}/src/lib.rs"),
            contents: lib_rs(svc)?,
        });
        out.push(GeneratedFile {
            path: format!("{dir}/src/pb.rs"),
            contents: format!("{}{pb}", super::header("//")),
        });
        out.push(GeneratedFile {
            path: format!("{dir}/src/api.rs"),
            contents: print(api(system, svc, &descriptor)?)?,
        });
        if super::es_runtime::has_module(svc) {
            out.push(GeneratedFile {
                path: format!("{dir}/src/runtime.rs"),
                contents: print(super::es_runtime::module(system, svc)?)?,
            });
        }
        if svc.pattern == Pattern::Crud {
            out.push(GeneratedFile {
                path: format!("{dir}/src/crud.rs"),
                contents: print(super::crud::module(system, svc)?)?,
            });
            if !super::crud::needs_hooks(system, svc) {
                out.push(GeneratedFile {
                    path: format!("{dir}/src/main.rs"),
                    contents: print(super::crud::main_rs(system, svc))?,
                });
            }
        }
    }
    Ok(out)
}

pub fn crate_name(system: &System, svc: &Service) -> String {
    format!("{}-{}", system.name, svc.name.replace('_', "-"))
}

fn crate_ident(system: &System, svc: &Service) -> proc_macro2::Ident {
    super::ident(crate_name(system, svc).replace('-', "_"))
}

pub(super) fn print(tokens: TokenStream) -> Result<String, EmitError> {
    thread_local! {
        static PRINTED: RefCell<Memo<String>> = RefCell::new(Memo::new());
    }
    PRINTED.with_borrow_mut(|memo| {
        memo.get_or_try(tokens.to_string(), || {
            let file: syn::File = syn::parse2(tokens)
                .map_err(|e| EmitError::Rust(format!("generated tokens do not parse: {e}")))?;
            Ok(format!(
                "{}{}",
                super::header("//"),
                prettyplease::unparse(&file)
            ))
        })
    })
}

/// Compiles every proto in memory; returns the Rust of `pkg` and its encoded descriptor set.
fn compile_proto(
    protos: &[GeneratedFile],
    pkg: &ProtoPackage,
) -> Result<(String, Vec<u8>), EmitError> {
    thread_local! {
        static COMPILED: RefCell<Memo<(String, Vec<u8>)>> = RefCell::new(Memo::new());
    }
    let mut key = String::new();
    for f in proto_closure(protos, &pkg.file) {
        key.extend([&f.path, "\0", &f.contents, "\0"]);
    }
    COMPILED.with_borrow_mut(|memo| memo.get_or_try(key, || compile_proto_uncached(protos, pkg)))
}

/// `file` and the generated protos it imports, directly or not.
fn proto_closure<'a>(protos: &'a [GeneratedFile], file: &str) -> Vec<&'a GeneratedFile> {
    let mut closure: Vec<&GeneratedFile> = Vec::new();
    let mut pending = vec![file.to_string()];
    while let Some(name) = pending.pop() {
        let Some(f) = protos.iter().find(|f| f.path == name) else {
            continue;
        };
        if closure.iter().any(|c| c.path == f.path) {
            continue;
        }
        closure.push(f);
        pending.extend(f.contents.lines().filter_map(|l| {
            let l = l.trim().strip_prefix("import")?.trim_start();
            let l = l.strip_prefix("public").unwrap_or(l).trim_start();
            Some(l.strip_prefix('"')?.split('"').next()?.to_string())
        }));
    }
    closure
}

fn compile_proto_uncached(
    protos: &[GeneratedFile],
    pkg: &ProtoPackage,
) -> Result<(String, Vec<u8>), EmitError> {
    struct Memory(Vec<GeneratedFile>);
    impl protox::file::FileResolver for Memory {
        fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
            match self.0.iter().find(|f| f.path == name) {
                Some(f) => protox::file::File::from_source(name, &f.contents),
                None => Err(protox::Error::file_not_found(name)),
            }
        }
    }
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(Memory(protos.to_vec()));
    resolver.add(protox::file::GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true).include_source_info(true);
    compiler
        .open_file(&pkg.file)
        .map_err(|e| EmitError::Proto(format!("{}: {e:?}", pkg.file)))?;
    let fds = compiler.file_descriptor_set();

    let mut config = prost_build::Config::new();
    config.service_generator(
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .build_transport(true)
            .service_generator(),
    );
    // prost needs the imported files too, to know their messages; we keep only ours.
    let requests: Vec<(prost_build::Module, prost_types::FileDescriptorProto)> = fds
        .file
        .iter()
        .map(|f| {
            (
                prost_build::Module::from_protobuf_package_name(f.package()),
                f.clone(),
            )
        })
        .collect();
    let mut modules = config
        .generate(requests)
        .map_err(|e| EmitError::Proto(e.to_string()))?;
    let code = modules
        .remove(&prost_build::Module::from_protobuf_package_name(
            &pkg.package,
        ))
        .ok_or_else(|| EmitError::Proto(format!("prost produced nothing for {}", pkg.file)))?;

    // Reflection serves the descriptors; comments and positions would only bloat them.
    let mut compiler_lean = fds;
    for f in &mut compiler_lean.file {
        f.source_code_info = None;
    }
    Ok((code, prost::Message::encode_to_vec(&compiler_lean)))
}

fn cargo_toml(system: &System, svc: &Service) -> Result<String, EmitError> {
    let mut ctx = tera::Context::new();
    ctx.insert("header", &super::header("#"));
    ctx.insert("name", &crate_name(system, svc));
    ctx.insert("service", &svc.name);
    ctx.insert("event_sourced", &svc.is_event_sourced());
    ctx.insert("crud", &(svc.pattern == Pattern::Crud));
    ctx.insert(
        "identity",
        &system.auth.as_ref().is_some_and(|a| a.service == svc.name),
    );
    ctx.insert(
        "binary",
        &(svc.pattern == Pattern::Crud && !super::crud::needs_hooks(system, svc))
            .then(|| format!("{}-service", svc.name.replace('_', "-"))),
    );
    let checked = svc
        .operations
        .iter()
        .flat_map(|o| &o.exists)
        .map(|c| c.service.as_str());
    let deps: BTreeSet<(String, String)> = svc
        .subscriptions
        .iter()
        .map(|s| s.service.as_str())
        .chain(checked)
        .filter_map(|name| system.services.iter().find(|o| o.name == name))
        .map(|o| (crate_name(system, o), o.name.clone()))
        .collect();
    let deps: Vec<serde_json::Value> = deps
        .into_iter()
        .map(|(name, dir)| serde_json::json!({ "name": name, "dir": dir }))
        .collect();
    ctx.insert("deps", &deps);
    super::render(
        "rust/Cargo.toml.tera",
        include_str!("../../../templates/rust/Cargo.toml.tera"),
        &ctx,
    )
}

fn lib_rs(svc: &Service) -> Result<String, EmitError> {
    let mut ctx = tera::Context::new();
    ctx.insert("crud", &(svc.pattern == Pattern::Crud));
    ctx.insert("runtime", &super::es_runtime::has_module(svc));
    ctx.insert("header", &super::header("//"));
    ctx.insert("service", &svc.name);
    ctx.insert("package", &svc.proto.package);
    super::render(
        "rust/lib.rs.tera",
        include_str!("../../../templates/rust/lib.rs.tera"),
        &ctx,
    )
}

fn api(system: &System, svc: &Service, descriptor: &[u8]) -> Result<TokenStream, EmitError> {
    let bytes = Literal::byte_string(descriptor);
    let validate = validators(svc);
    let services = service_traits(svc);
    let es = if svc.is_event_sourced() {
        event_sourcing(system, svc)?
    } else {
        TokenStream::new()
    };
    let doc = format!(
        " The `{}` service ({}): {}.",
        svc.name,
        svc.pattern.as_str(),
        svc.proto.package
    );
    Ok(quote! {
        #![doc = #doc]
        use std::future::Future;
        use std::sync::Arc;

        use keel::{RequestContext, ServiceError, Validate, Violations};

        use crate::pb;

        /// The encoded `FileDescriptorSet` of this service's proto package, for server reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] = #bytes;

        #validate
        #services
        #es
    })
}

// ------------------------------------------------------------------ validation

fn validators(svc: &Service) -> TokenStream {
    let pkg = &svc.proto;
    // Requests, and every message nested in one.
    let mut wanted: Vec<&str> = pkg
        .messages
        .iter()
        .filter(|m| m.name.ends_with("Request"))
        .map(|m| m.name.as_str())
        .collect();
    let mut i = 0;
    while i < wanted.len() {
        if let Some(m) = pkg.messages.iter().find(|m| m.name == wanted[i]) {
            for f in &m.fields {
                if let ProtoType::Message(n) = &f.ty
                    && !wanted.contains(&n.as_str())
                {
                    wanted.push(n);
                }
            }
        }
        i += 1;
    }
    let impls = pkg
        .messages
        .iter()
        .filter(|m| wanted.contains(&m.name.as_str()))
        .map(|m| {
            let ty = super::ident(&m.name);
            let checks = m.fields.iter().map(field_check);
            let uses_v = m
                .fields
                .iter()
                .any(|f| f.check.is_some() || matches!(f.ty, ProtoType::Message(_)));
            let (prefix, v) = if uses_v {
                (quote!(prefix), quote!(v))
            } else {
                (quote!(_prefix), quote!(_v))
            };
            quote! {
                impl Validate for pb::#ty {
                    fn validate_into(&self, #prefix: &str, #v: &mut Violations) {
                        #(#checks)*
                    }
                }
            }
        });
    quote! { #(#impls)* }
}

fn field_check(f: &MessageField) -> TokenStream {
    let name = super::ident(rust_field(&f.name));
    let label = &f.name;
    let path = quote!(keel::validate_path(prefix, #label));
    if let ProtoType::Message(_) = &f.ty {
        return match f.label {
            Label::Repeated => quote! {
                for (i, item) in self.#name.iter().enumerate() {
                    item.validate_into(&format!("{}[{}]", #path, i), v);
                }
            },
            _ => quote! {
                if let Some(item) = &self.#name {
                    item.validate_into(&#path, v);
                }
            },
        };
    }
    let Some(check) = &f.check else {
        return TokenStream::new();
    };
    let c = &check.constraints;
    let opt = |o: Option<u32>| match o {
        Some(n) => quote!(Some(#n)),
        None => quote!(None),
    };
    let opt64 = |o: Option<i64>| match o {
        Some(n) => quote!(Some(#n)),
        None => quote!(None),
    };
    let on_value: TokenStream = match &check.ty {
        FieldType::Uuid | FieldType::Ref(_) => quote!(v.uuid(#path, value);),
        FieldType::String | FieldType::Text | FieldType::Email => {
            let (lo, hi) = (opt(c.min_len), opt(c.max_len));
            let email = (check.ty == FieldType::Email).then(|| quote!(v.email(#path, value);));
            let one_of = (!c.one_of.is_empty()).then(|| {
                let values = &c.one_of;
                quote!(v.one_of(#path, value, &[#(#values),*]);)
            });
            quote! {
                v.length(#path, value, #lo, #hi);
                #email
                #one_of
            }
        }
        FieldType::Int | FieldType::Money => {
            if c.min.is_none() && c.max.is_none() {
                return TokenStream::new();
            }
            let (lo, hi) = (opt64(c.min), opt64(c.max));
            quote!(v.range(#path, i64::from(*value), #lo, #hi);)
        }
        FieldType::Timestamp => {
            return match f.label {
                Label::Required => quote!(v.required(#path, &self.#name);),
                _ => TokenStream::new(),
            };
        }
        FieldType::Bool => return TokenStream::new(),
    };
    match f.label {
        Label::Optional => quote! {
            if let Some(value) = &self.#name {
                #on_value
            }
        },
        Label::Repeated => quote! {
            for value in &self.#name {
                #on_value
            }
        },
        Label::Required => quote! {
            {
                let value = &self.#name;
                #on_value
            }
        },
    }
}

fn rust_field(name: &str) -> String {
    // prost escapes Rust keywords as raw identifiers; the spec already forbids them.
    name.to_string()
}

// ------------------------------------------------------------------ services

fn use_case_trait_name(proto_service: &str) -> String {
    format!(
        "{}UseCases",
        proto_service
            .strip_suffix("Service")
            .unwrap_or(proto_service)
    )
}

fn service_traits(svc: &Service) -> TokenStream {
    let mut out = TokenStream::new();
    for ps in &svc.proto.services {
        let trait_name = super::ident(use_case_trait_name(&ps.name));
        let grpc = format_ident!(
            "{}Grpc",
            ps.name.strip_suffix("Service").unwrap_or(&ps.name)
        );
        let server_mod = format_ident!("{}_server", ps.name.to_snake_case());
        let tonic_trait = super::ident(&ps.name);
        let tonic_server = format_ident!("{}Server", ps.name);
        let ctor = format_ident!(
            "{}_server",
            ps.name
                .strip_suffix("Service")
                .unwrap_or(&ps.name)
                .to_snake_case()
        );
        let mut trait_methods = Vec::new();
        let mut glue = Vec::new();
        for rpc in &ps.methods {
            let op = svc.operation(&rpc.method);
            let method = super::ident(rpc.method.to_snake_case());
            let req = super::ident(&rpc.request);
            let resp = super::ident(&rpc.response);
            let mut doc = op
                .and_then(|o| o.doc.clone())
                .unwrap_or_else(|| format!("`{}`", rpc.method));
            if let Some(o) = op {
                doc = format!(
                    " {doc}\n\n Kind: {:?}; audience: {:?}; {}. The request is already validated against the spec.",
                    o.kind,
                    o.audience,
                    if o.idempotent {
                        "idempotent (retried by Envoy)"
                    } else {
                        "not retried"
                    }
                );
            }
            let method_name = &rpc.method;
            trait_methods.push(quote! {
                #[doc = #doc]
                fn #method(&self, ctx: RequestContext, request: pb::#req) -> impl Future<Output = Result<pb::#resp, ServiceError>> + Send;
            });
            glue.push(quote! {
                async fn #method(&self, request: tonic::Request<pb::#req>) -> Result<tonic::Response<pb::#resp>, tonic::Status> {
                    keel::rpc::serve(#method_name, request, |ctx, request| self.inner.#method(ctx, request)).await
                }
            });
        }
        let trait_doc = format!(
            " The use cases of `{}.{}`. Hand-written code implements this; a use case added to the spec shows up as a missing method here.",
            svc.proto.package, ps.name
        );
        let grpc_doc = format!(
            " Serves a [`{trait_name}`] as `{}.{}`: validates, traces, maps errors to statuses.",
            svc.proto.package, ps.name
        );
        let ctor_doc = format!(
            " The tonic service for `{}.{}`, ready for `Server::add_service`.",
            svc.proto.package, ps.name
        );
        let name = format!("{}.{}", svc.proto.package, ps.name);
        out.extend(quote! {
            #[doc = #trait_doc]
            pub trait #trait_name: Send + Sync + 'static {
                #(#trait_methods)*
            }

            #[doc = #grpc_doc]
            pub struct #grpc<T> {
                inner: Arc<T>,
            }

            impl<T> #grpc<T> {
                /// The full gRPC service name.
                pub const NAME: &'static str = #name;
            }

            #[tonic::async_trait]
            impl<T: #trait_name> pb::#server_mod::#tonic_trait for #grpc<T> {
                #(#glue)*
            }

            #[doc = #ctor_doc]
            pub fn #ctor<T: #trait_name>(inner: Arc<T>) -> pb::#server_mod::#tonic_server<#grpc<T>> {
                pb::#server_mod::#tonic_server::new(#grpc { inner })
            }
        });
    }
    out
}

// ------------------------------------------------------------------ event sourcing

/// One field of an event payload version, as the upcaster sees it.
struct PayloadField<'a> {
    name: &'a str,
    class: &'static str,
    optional: bool,
    renamed_from: Option<&'a str>,
    default: Option<&'a DefaultValue>,
}

fn payload(fields: &[EventSchemaField]) -> Vec<PayloadField<'_>> {
    fields
        .iter()
        .map(|f| PayloadField {
            name: &f.name,
            class: f.ty.class(),
            optional: f.optional,
            renamed_from: f.renamed_from.as_deref(),
            default: f.default.as_ref(),
        })
        .collect()
}

fn json_value(d: &DefaultValue) -> TokenStream {
    match d {
        DefaultValue::Bool(b) => quote!(serde_json::Value::Bool(#b)),
        DefaultValue::Int(n) => quote!(serde_json::Value::from(#n)),
        DefaultValue::Str(s) => quote!(serde_json::Value::String(#s.to_string())),
    }
}

/// The upcaster trait (one method per older payload version, each with a default) and
/// `decode_stored`, which reads any stored version of any event.
fn upcasting(svc: &Service) -> TokenStream {
    let agg = &svc.entity;
    let event_enum = format_ident!("{}Event", agg);
    let upcaster = format_ident!("{}Upcaster", agg);
    let default_upcaster = format_ident!("Default{}Upcaster", agg);
    let mut methods = Vec::new();
    let mut arms = Vec::new();
    for e in &svc.events {
        let ident = super::ident(&e.name);
        let type_name = &e.name;
        let mut steps = Vec::new();
        for (i, old) in e.history.iter().enumerate() {
            let from = payload(&old.fields);
            let to = match e.history.get(i + 1) {
                Some(next) => payload(&next.fields),
                None => e
                    .fields
                    .iter()
                    .map(|f| PayloadField {
                        name: &f.name,
                        class: f.ty.class(),
                        optional: f.optional,
                        renamed_from: f.renamed_from.as_deref(),
                        default: f.default.as_ref(),
                    })
                    .collect(),
            };
            let next_version = old.version + 1;
            let method = format_ident!("{}_v{}", e.name.to_snake_case(), old.version);
            let mut ops = Vec::new();
            let mut said = Vec::new();
            let mut consumed = Vec::new();
            for t in &to {
                let name = t.name;
                if let Some(s) = from.iter().find(|s| s.name == name) {
                    if s.class != t.class {
                        said.push(format!("`{name}` changes type: override this if stored values do not read as the new type"));
                    }
                    continue;
                }
                if let Some(old_name) = t.renamed_from.filter(|o| from.iter().any(|s| s.name == *o))
                {
                    consumed.push(old_name);
                    ops.push(quote! {
                        if let Some(value) = data.remove(#old_name) {
                            data.insert(#name.to_string(), value);
                        }
                    });
                    said.push(format!("renames `{old_name}` to `{name}`"));
                } else if let Some(d) = t.default {
                    let v = json_value(d);
                    ops.push(quote!(data.entry(#name).or_insert(#v);));
                    said.push(format!("adds `{name}` with its default"));
                } else if t.optional {
                    ops.push(quote!(data.entry(#name).or_insert(serde_json::Value::Null);));
                    said.push(format!("adds `{name}` as null"));
                } else {
                    said.push(format!("`{name}` is new and required with no default: override this to give it a value"));
                }
            }
            for s in from
                .iter()
                .filter(|s| !to.iter().any(|t| t.name == s.name) && !consumed.contains(&s.name))
            {
                let name = s.name;
                ops.push(quote!(data.remove(#name);));
                said.push(format!("drops `{name}`"));
            }
            let doc = format!(
                " `{}` schema version {} to {next_version}: {}. Override when the default is not enough.",
                e.name,
                old.version,
                if said.is_empty() {
                    "nothing to do".to_string()
                } else {
                    said.join("; ")
                }
            );
            let body = if ops.is_empty() {
                quote!(Ok(data))
            } else {
                quote! {
                    let mut data = data;
                    #(#ops)*
                    Ok(data)
                }
            };
            methods.push(quote! {
                #[doc = #doc]
                fn #method(&self, data: serde_json::Map<String, serde_json::Value>) -> Result<serde_json::Map<String, serde_json::Value>, ServiceError> {
                    #body
                }
            });
            let version = old.version;
            steps.push(quote! {
                if schema_version <= #version {
                    data = upcaster.#method(data)?;
                }
            });
        }
        let known = if e.history.is_empty() {
            quote!(schema_version != #ident::SCHEMA_VERSION)
        } else {
            quote!(schema_version == 0 || schema_version > #ident::SCHEMA_VERSION)
        };
        arms.push(quote! {
            #type_name => {
                if #known {
                    return Err(ServiceError::Internal(format!(
                        "stored event `{}` has schema version {}, which this build does not know (current: {})",
                        #type_name, schema_version, #ident::SCHEMA_VERSION
                    )));
                }
                #(#steps)*
                let event: #ident = serde_json::from_value(serde_json::Value::Object(data)).map_err(|e| {
                    ServiceError::Internal(format!(
                        "stored event `{}` of schema version {} does not decode: {}",
                        #type_name, schema_version, e
                    ))
                })?;
                Ok(#event_enum::#ident(event))
            }
        });
    }
    let upcasts = svc.events.iter().any(|e| !e.history.is_empty());
    let (data_binding, upcaster_param) = if upcasts {
        (quote!(let mut data), quote!(upcaster))
    } else {
        (quote!(let data), quote!(_upcaster))
    };
    let trait_doc = format!(
        " Turns stored `{agg}` events of older payload schema versions into the next version, one step per method. Every method has a default (drops removed fields, renames renamed ones, adds new ones with their default or as null); implement this trait and override a method when that is not enough."
    );
    let default_doc = format!(" The [`{upcaster}`] with every default.");
    quote! {
        #[doc = #trait_doc]
        pub trait #upcaster: Send + Sync {
            #(#methods)*
        }

        #[doc = #default_doc]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct #default_upcaster;

        impl #upcaster for #default_upcaster {}

        impl #event_enum {
            /// Decodes a stored event from its type name, payload schema version and JSON
            /// (this enum's serde form, or its `data` alone); older versions go through
            /// the default upcaster.
            pub fn decode_stored(event_type: &str, schema_version: u32, json: &serde_json::Value) -> Result<Self, ServiceError> {
                Self::decode_stored_with(&#default_upcaster, event_type, schema_version, json)
            }

            /// [`Self::decode_stored`] with a hand-written upcaster for older versions.
            pub fn decode_stored_with<U: #upcaster + ?Sized>(#upcaster_param: &U, event_type: &str, schema_version: u32, json: &serde_json::Value) -> Result<Self, ServiceError> {
                let payload = match (json.get("type"), json.get("data")) {
                    (Some(_), Some(data)) => data,
                    _ => json,
                };
                #data_binding = payload.as_object().cloned().ok_or_else(|| {
                    ServiceError::Internal(format!("stored event `{}`: the payload is not a JSON object", event_type))
                })?;
                match event_type {
                    #(#arms)*
                    other => Err(ServiceError::Internal(format!("stored event of unknown type `{}`", other))),
                }
            }
        }
    }
}

fn domain_type(f: &Field) -> TokenStream {
    let base = match f.ty {
        FieldType::Uuid | FieldType::Ref(_) => quote!(uuid::Uuid),
        FieldType::String | FieldType::Text | FieldType::Email => quote!(String),
        FieldType::Int => quote!(i32),
        FieldType::Money => quote!(i64),
        FieldType::Timestamp => quote!(chrono::DateTime<chrono::Utc>),
        FieldType::Bool => quote!(bool),
    };
    if f.optional {
        quote!(Option<#base>)
    } else {
        base
    }
}

/// Converts a validated proto field into its domain value; `src` is `request` or `p`.
fn from_pb(f: &Field, src: &TokenStream) -> TokenStream {
    let name = super::ident(&f.name);
    let label = &f.name;
    // `v` is a reference to the proto value.
    let one = |v: TokenStream| -> TokenStream {
        match f.ty {
            FieldType::Uuid | FieldType::Ref(_) => quote! {
                uuid::Uuid::parse_str(#v).map_err(|_| ServiceError::invalid(#label, "must be a UUID"))?
            },
            FieldType::String | FieldType::Text | FieldType::Email => quote!(#v.clone()),
            FieldType::Int | FieldType::Money | FieldType::Bool => quote!(*#v),
            FieldType::Timestamp => quote! {
                keel::timestamp_to_utc(#v).ok_or_else(|| ServiceError::invalid(#label, "must be a valid timestamp"))?
            },
        }
    };
    if f.optional {
        let conv = one(quote!(x));
        return quote!(match &#src.#name { Some(x) => Some(#conv), None => None });
    }
    if f.ty == FieldType::Timestamp {
        let conv = one(quote!(t));
        return quote! {
            match &#src.#name { Some(t) => #conv, None => return Err(ServiceError::invalid(#label, "is required")) }
        };
    }
    match f.ty {
        FieldType::Uuid | FieldType::Ref(_) => one(quote!(&#src.#name)),
        FieldType::String | FieldType::Text | FieldType::Email => quote!(#src.#name.clone()),
        _ => quote!(#src.#name),
    }
}

fn to_pb(f: &Field, src: &TokenStream) -> TokenStream {
    let name = super::ident(&f.name);
    // `v` is a reference to the domain value.
    let one = |v: TokenStream| -> TokenStream {
        match f.ty {
            FieldType::Uuid | FieldType::Ref(_) => quote!(#v.to_string()),
            FieldType::String | FieldType::Text | FieldType::Email => quote!(#v.clone()),
            FieldType::Int | FieldType::Money | FieldType::Bool => quote!(*#v),
            FieldType::Timestamp => quote!(keel::utc_to_timestamp(#v)),
        }
    };
    if f.optional {
        let c = one(quote!(x));
        return quote!(#src.#name.as_ref().map(|x| #c));
    }
    match f.ty {
        FieldType::Timestamp => quote!(Some(keel::utc_to_timestamp(&#src.#name))),
        FieldType::Int | FieldType::Money | FieldType::Bool => quote!(#src.#name),
        _ => one(quote!(#src.#name)),
    }
}

fn event_sourcing(system: &System, svc: &Service) -> Result<TokenStream, EmitError> {
    let agg = &svc.entity;
    let event_enum = format_ident!("{}Event", agg);
    let command_enum = format_ident!("{}Command", agg);
    let aggregate_trait = format_ident!("{}Aggregate", agg);
    let decider = format_ident!("{}Decider", agg);
    let service_name = svc.name.as_str();
    let payload_mod = super::ident(format!("{agg}Event").to_snake_case());

    // Events.
    let mut event_structs = Vec::new();
    let mut variants = Vec::new();
    let mut type_arms = Vec::new();
    let mut to_pb_arms = Vec::new();
    let mut from_pb_arms = Vec::new();
    for e in &svc.events {
        let ident = super::ident(&e.name);
        let doc = e
            .doc
            .clone()
            .unwrap_or_else(|| format!(" `{}`, schema version {}.", e.name, e.version));
        let names: Vec<_> = e.fields.iter().map(|f| super::ident(&f.name)).collect();
        let types: Vec<_> = e.fields.iter().map(domain_type).collect();
        let src = quote!(self);
        let pb_fields: Vec<_> = e.fields.iter().map(|f| to_pb(f, &src)).collect();
        let psrc = quote!(p);
        let from_fields: Vec<_> = e.fields.iter().map(|f| from_pb(f, &psrc)).collect();
        let type_name = &e.name;
        let version = e.version;
        let p_param = if e.fields.is_empty() {
            format_ident!("_p")
        } else {
            format_ident!("p")
        };
        event_structs.push(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
            pub struct #ident {
                #(pub #names: #types,)*
            }

            impl #ident {
                pub const TYPE: &'static str = #type_name;
                pub const SCHEMA_VERSION: u32 = #version;

                pub fn to_pb(&self) -> pb::#ident {
                    pb::#ident { #(#names: #pb_fields,)* }
                }

                pub fn from_pb(#p_param: &pb::#ident) -> Result<Self, ServiceError> {
                    Ok(#ident { #(#names: #from_fields,)* })
                }
            }
        });
        variants.push(quote!(#ident(#ident)));
        type_arms.push(quote!(#event_enum::#ident(_) => (#ident::TYPE, #ident::SCHEMA_VERSION)));
        to_pb_arms
            .push(quote!(#event_enum::#ident(e) => pb::#payload_mod::Payload::#ident(e.to_pb())));
        from_pb_arms.push(quote!(pb::#payload_mod::Payload::#ident(p) => #event_enum::#ident(#ident::from_pb(p)?)));
    }

    let upcasting = upcasting(svc);

    // Commands.
    let mut command_structs = Vec::new();
    let mut command_variants = Vec::new();
    let mut decide_arms = Vec::new();
    let mut aggregate_methods = Vec::new();
    let mut stream_id_arms = Vec::new();
    let mut name_arms = Vec::new();
    let id_field = format!("{}_id", agg.to_snake_case());
    for o in svc
        .operations
        .iter()
        .filter(|o| o.kind == OperationKind::Command)
    {
        let ident = super::ident(&o.name);
        let req = super::ident(&o.rpc.request);
        let method = super::ident(o.name.to_snake_case());
        let names: Vec<_> = o.input.iter().map(|f| super::ident(&f.name)).collect();
        let types: Vec<_> = o.input.iter().map(domain_type).collect();
        let src = quote!(request);
        let from_fields: Vec<_> = o.input.iter().map(|f| from_pb(f, &src)).collect();
        let doc = o
            .doc
            .clone()
            .unwrap_or_else(|| format!(" The `{}` command; emits {}.", o.name, o.emits.join(", ")));
        command_structs.push(quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, PartialEq)]
            pub struct #ident {
                #(pub #names: #types,)*
            }

            impl TryFrom<&pb::#req> for #ident {
                type Error = ServiceError;
                fn try_from(request: &pb::#req) -> Result<Self, ServiceError> {
                    Ok(#ident { #(#names: #from_fields,)* })
                }
            }
        });
        command_variants.push(quote!(#ident(#ident)));
        let name = &o.name;
        name_arms.push(quote!(#command_enum::#ident(_) => #name,));
        decide_arms.push(quote!(#command_enum::#ident(c) => state.#method(c)));
        let mdoc = format!(
            " Decides `{}`: the events to append (declared: {}), or why not.",
            o.name,
            o.emits.join(", ")
        );
        aggregate_methods.push(quote! {
            #[doc = #mdoc]
            fn #method(&self, command: &#ident) -> Result<Vec<#event_enum>, ServiceError>;
        });
        stream_id_arms.push(if o.input.iter().any(|f| f.name == id_field) {
            let id = super::ident(&id_field);
            quote!(#command_enum::#ident(c) => Some(c.#id),)
        } else {
            quote!(#command_enum::#ident(_) => None,)
        });
    }

    // Subscriptions.
    let mut sub_methods = Vec::new();
    for s in &svc.subscriptions {
        let Some(other) = system.services.iter().find(|o| o.name == s.service) else {
            continue;
        };
        let other_crate = crate_ident(system, other);
        let ev = super::ident(&s.event);
        let method = format_ident!("on_{}_{}", s.service, s.event.to_snake_case());
        let other_id = format_ident!("{}_id", other.entity.to_snake_case());
        let doc = format!(
            " Reacts to `{}.{}` (from topic {}): returns the commands to run here (the spec names `{}`).",
            s.service,
            s.event,
            other
                .messaging
                .as_ref()
                .map(|m| m.topic.as_str())
                .unwrap_or("-"),
            s.command
        );
        sub_methods.push(quote! {
            #[doc = #doc]
            fn #method(&self, #other_id: uuid::Uuid, event: &#other_crate::#ev) -> impl Future<Output = Result<Vec<#command_enum>, ServiceError>> + Send;
        });
    }
    let subscriptions = if sub_methods.is_empty() {
        TokenStream::new()
    } else {
        let t = format_ident!("{}Subscriptions", svc.name.to_upper_camel_case());
        let doc = format!(
            " What service `{}` does when other services' events arrive.",
            svc.name
        );
        let reactions = reactions(system, svc, &t, &command_enum);
        quote! {
            #[doc = #doc]
            pub trait #t: Send + Sync + 'static {
                #(#sub_methods)*
            }

            #reactions
        }
    };

    let handlers = command_handlers(svc, &decider, &aggregate_trait, &command_enum);
    let view_method = if strong_queries(svc).next().is_some() || svc.pattern == Pattern::CqrsEs {
        let entity = super::ident(agg);
        quote! {
            /// The state as the API shows it (what a strongly consistent query answers);
            /// `None` when the stream does not exist for its callers (never created,
            /// or deleted).
            fn view(&self, id: uuid::Uuid) -> Option<pb::#entity>;
        }
    } else {
        TokenStream::new()
    };

    // A CQRS read model keeps each stream's state (JSON) beside its rows.
    let state_bounds = if svc.pattern == Pattern::CqrsEs {
        quote! { + serde::Serialize + serde::de::DeserializeOwned }
    } else {
        TokenStream::new()
    };
    let topic = svc
        .messaging
        .as_ref()
        .map(|m| m.topic.clone())
        .unwrap_or_default();
    let agg_doc = format!(
        " The `{agg}` aggregate: state folded from its events, and one decision per command. Hand-written code implements it."
    );
    let event_doc = format!(" Every event of a `{agg}` stream.");
    let command_doc = format!(" Every command the `{agg}` aggregate decides.");
    let envelope = format_ident!("{}Event", agg);
    let stream_field = super::ident(&id_field);
    Ok(quote! {
        /// The Kafka topic this service's events are published to, keyed by stream id.
        pub const TOPIC: &str = #topic;

        #(#event_structs)*

        #[doc = #event_doc]
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "type", content = "data")]
        pub enum #event_enum {
            #(#variants,)*
        }

        impl #event_enum {
            /// The event's type name and payload schema version, as stored.
            pub fn type_and_version(&self) -> (&'static str, u32) {
                match self { #(#type_arms,)* }
            }

            pub fn to_payload(&self) -> pb::#payload_mod::Payload {
                match self { #(#to_pb_arms,)* }
            }

            pub fn from_payload(p: &pb::#payload_mod::Payload) -> Result<Self, ServiceError> {
                Ok(match p { #(#from_pb_arms,)* })
            }

            /// Wraps the event for the wire (Kafka value, outbox payload).
            pub fn to_envelope(&self, meta: &EventMeta) -> pb::#envelope {
                let (_, schema_version) = self.type_and_version();
                pb::#envelope {
                    event_id: meta.event_id.to_string(),
                    #stream_field: meta.stream_id.to_string(),
                    version: meta.version,
                    occurred_at: Some(keel::utc_to_timestamp(&meta.occurred_at)),
                    correlation_id: meta.correlation_id.clone(),
                    causation_id: meta.causation_id.clone(),
                    schema_version,
                    payload: Some(self.to_payload()),
                }
            }

            /// Unwraps an event read from the wire.
            pub fn from_envelope(e: &pb::#envelope) -> Result<(EventMeta, Self), ServiceError> {
                let bad = |what: &str| ServiceError::invalid(what.to_string(), "malformed event envelope");
                let meta = EventMeta {
                    event_id: uuid::Uuid::parse_str(&e.event_id).map_err(|_| bad("event_id"))?,
                    stream_id: uuid::Uuid::parse_str(&e.#stream_field).map_err(|_| bad("stream_id"))?,
                    version: e.version,
                    occurred_at: e.occurred_at.as_ref().and_then(keel::timestamp_to_utc).ok_or_else(|| bad("occurred_at"))?,
                    correlation_id: e.correlation_id.clone(),
                    causation_id: e.causation_id.clone(),
                };
                let payload = e.payload.as_ref().ok_or_else(|| bad("payload"))?;
                Ok((meta, Self::from_payload(payload)?))
            }
        }

        #upcasting

        pub use keel::es::EventMeta;

        impl keel::es::Event for #event_enum {
            type Envelope = pb::#envelope;
            fn type_and_version(&self) -> (&'static str, u32) {
                #event_enum::type_and_version(self)
            }
            fn to_json(&self) -> Result<serde_json::Value, ServiceError> {
                keel::es::payload_json(self)
            }
            fn decode_stored(event_type: &str, schema_version: u32, json: &serde_json::Value) -> Result<Self, ServiceError> {
                #event_enum::decode_stored(event_type, schema_version, json)
            }
            fn to_envelope(&self, meta: &EventMeta) -> pb::#envelope {
                #event_enum::to_envelope(self, meta)
            }
            fn from_envelope(e: &pb::#envelope) -> Result<(EventMeta, Self), ServiceError> {
                #event_enum::from_envelope(e)
            }
        }

        #(#command_structs)*

        #[doc = #command_doc]
        #[derive(Debug, Clone, PartialEq)]
        pub enum #command_enum {
            #(#command_variants,)*
        }

        impl #command_enum {
            /// The stream the command addresses, when its input names it.
            pub fn stream_id(&self) -> Option<uuid::Uuid> {
                match self { #(#stream_id_arms)* }
            }

            /// The command's name in the spec.
            pub fn name(&self) -> &'static str {
                match self { #(#name_arms)* }
            }
        }

        #[doc = #agg_doc]
        pub trait #aggregate_trait: Default + Clone + Send + Sync #state_bounds + 'static {
            /// Folds one event into the state. Events are facts: this cannot fail.
            fn apply(&mut self, event: &#event_enum);
            /// Folds what only an event's metadata knows (when it was recorded) into the
            /// state, after [`Self::apply`]; nothing by default.
            fn recorded(&mut self, event: &#event_enum, meta: &EventMeta) {
                let _ = (event, meta);
            }
            #(#aggregate_methods)*
            #view_method
        }

        /// Runs the decision for any command.
        pub fn decide<A: #aggregate_trait>(state: &A, command: &#command_enum) -> Result<Vec<#event_enum>, ServiceError> {
            match command { #(#decide_arms,)* }
        }

        /// The state after `events`, from the empty aggregate.
        pub fn fold<'a, A: #aggregate_trait>(events: impl IntoIterator<Item = &'a #event_enum>) -> A {
            let mut state = A::default();
            for e in events {
                state.apply(e);
            }
            state
        }

        /// The aggregate `A` as the event-sourcing runtime runs it.
        pub struct #decider<A>(std::marker::PhantomData<fn() -> A>);

        impl<A: #aggregate_trait> keel::es::Decider for #decider<A> {
            type State = A;
            type Event = #event_enum;
            type Command = #command_enum;
            const SERVICE: &'static str = #service_name;
            fn apply(state: &mut A, event: &#event_enum, meta: &EventMeta) {
                state.apply(event);
                state.recorded(event, meta);
            }
            fn decide(state: &A, command: &#command_enum) -> Result<Vec<#event_enum>, ServiceError> {
                decide(state, command)
            }
            fn stream_id(command: &#command_enum) -> Option<uuid::Uuid> {
                command.stream_id()
            }
            fn command_name(command: &#command_enum) -> &'static str {
                command.name()
            }
        }

        #subscriptions

        #handlers
    })
}

/// Per other service subscribed to: a wrapper that implements the runtime's `Reaction`
/// for that service's events over the hand-written subscription trait.
fn reactions(
    system: &System,
    svc: &Service,
    subscriptions: &proc_macro2::Ident,
    command_enum: &proc_macro2::Ident,
) -> TokenStream {
    let mut out = TokenStream::new();
    let mut others: Vec<&str> = svc
        .subscriptions
        .iter()
        .map(|s| s.service.as_str())
        .collect();
    others.dedup();
    for other_name in others {
        let Some(other) = system.services.iter().find(|o| o.name == other_name) else {
            continue;
        };
        let other_crate = crate_ident(system, other);
        let other_event = format_ident!("{}Event", other.entity);
        let wrapper = format_ident!(
            "{}On{}Events",
            svc.name.to_upper_camel_case(),
            other.name.to_upper_camel_case()
        );
        let arms = svc.subscriptions.iter().filter(|s| s.service == other_name).map(|s| {
            let ev = super::ident(&s.event);
            let method = format_ident!("on_{}_{}", s.service, s.event.to_snake_case());
            quote!(#other_crate::#other_event::#ev(e) => self.0.#method(meta.stream_id, e).await,)
        });
        let doc = format!(
            " Runs [`{subscriptions}`] for the events of service `{}` (the runtime's subscriber takes it).",
            other.name
        );
        out.extend(quote! {
            #[doc = #doc]
            pub struct #wrapper<T>(pub T);

            impl<T: #subscriptions> keel::es::Reaction<#other_crate::#other_event> for #wrapper<T> {
                type Command = #command_enum;
                async fn commands(
                    &self,
                    meta: &keel::es::EventMeta,
                    event: &#other_crate::#other_event,
                ) -> Result<Vec<#command_enum>, ServiceError> {
                    #[allow(unreachable_patterns)]
                    match event {
                        #(#arms)*
                        _ => Ok(Vec::new()),
                    }
                }
            }
        });
    }
    out
}

/// The queries answered by the command side from the folded state.
fn strong_queries(svc: &Service) -> impl Iterator<Item = &Operation> {
    let command_side: Vec<&str> = svc
        .operations
        .iter()
        .filter(|o| o.kind == OperationKind::Command)
        .map(|o| o.deployable.as_str())
        .collect();
    svc.operations.iter().filter(move |o| {
        o.kind == OperationKind::Query && command_side.contains(&o.deployable.as_str())
    })
}

/// The body of a command use case on `runner` (the CQRS executor or the CQS store):
/// request to command (types under `path`), executed under the request's idempotency key
/// and expected version, answered with the stream id and version.
pub(super) fn command_use_case(
    o: &Operation,
    path: &TokenStream,
    command_enum: &proc_macro2::Ident,
    runner: &TokenStream,
    id_ident: &proc_macro2::Ident,
    resp: &proc_macro2::Ident,
) -> TokenStream {
    let variant = super::ident(&o.name);
    // An idempotent command's request has no key: retrying it is safe as it is.
    let key = if o.takes_idempotency_key() {
        quote!(request.idempotency_key.as_deref())
    } else {
        quote!(None)
    };
    quote! {
        let command = #path #command_enum::#variant(#path #variant::try_from(&request)?);
        let done = #runner
            .execute(&ctx, #key, request.expected_version, &command)
            .await?;
        Ok(pb::#resp { #id_ident: done.stream_id.to_string(), version: done.version })
    }
}

/// The command side of a CQRS service on the runtime's executor: every command use case
/// (request to command, execute under the request's idempotency key and expected
/// version, answer the stream id and version) and every strong query (load, fold,
/// `view`). Only when every method of that proto service is one of those.
fn command_handlers(
    svc: &Service,
    decider: &proc_macro2::Ident,
    aggregate_trait: &proc_macro2::Ident,
    command_enum: &proc_macro2::Ident,
) -> TokenStream {
    if svc.pattern != Pattern::CqrsEs {
        return TokenStream::new();
    }
    let Some(ps) = svc.proto.services.iter().find(|ps| {
        ps.methods.iter().any(|m| {
            svc.operation(&m.method)
                .is_some_and(|o| o.kind == OperationKind::Command)
        })
    }) else {
        return TokenStream::new();
    };
    let agg = svc.entity.as_str();
    let id_field = format!("{}_id", agg.to_snake_case());
    let id_ident = super::ident(&id_field);
    let out_ident = super::ident(agg.to_snake_case());
    let mut methods = Vec::new();
    for m in &ps.methods {
        let Some(o) = svc.operation(&m.method) else {
            return TokenStream::new();
        };
        let method = super::ident(m.method.to_snake_case());
        let req = super::ident(&m.request);
        let resp = super::ident(&m.response);
        let body = match o.kind {
            OperationKind::Command => command_use_case(
                o,
                &TokenStream::new(),
                command_enum,
                &quote!(self.executor),
                &id_ident,
                &resp,
            ),
            OperationKind::Query
                if o.input.len() == 1
                    && o.input[0].name == id_field
                    && o.output.as_deref().is_none_or(|out| out == agg) =>
            {
                quote! {
                    let _ = ctx;
                    let id = uuid::Uuid::parse_str(&request.#id_ident)
                        .map_err(|_| ServiceError::invalid(#id_field, "must be a UUID"))?;
                    let (state, version, _) = self.executor.load(id).await?;
                    let found = state.view(id).ok_or_else(|| ServiceError::not_found(#agg, id))?;
                    Ok(pb::#resp { #out_ident: Some(found), version })
                }
            }
            _ => return TokenStream::new(),
        };
        methods.push(quote! {
            async fn #method(&self, ctx: RequestContext, request: pb::#req) -> Result<pb::#resp, ServiceError> {
                #body
            }
        });
    }
    let handlers = format_ident!(
        "{}Handlers",
        ps.name.strip_suffix("Service").unwrap_or(&ps.name)
    );
    let use_cases = super::ident(use_case_trait_name(&ps.name));
    let doc = format!(
        " `{}` on the event-sourcing runtime: every use case generated (feature `runtime`).",
        ps.name
    );
    quote! {
        #[doc = #doc]
        #[cfg(feature = "runtime")]
        pub struct #handlers<A, C> {
            pub executor: keel::es::command::Executor<#decider<A>, C>,
        }

        #[cfg(feature = "runtime")]
        impl<A, C> #use_cases for #handlers<A, C>
        where
            A: #aggregate_trait,
            C: keel::es::command::Checks<#decider<A>>,
        {
            #(#methods)*
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(path: &str, contents: &str) -> GeneratedFile {
        GeneratedFile {
            path: path.to_string(),
            contents: contents.to_string(),
        }
    }

    #[test]
    fn a_proto_closure_follows_imports_and_leaves_out_the_rest() {
        let protos = [
            proto("a.proto", "syntax = \"proto3\";\nimport \"b.proto\";\n"),
            proto(
                "b.proto",
                "import public \"c.proto\";\nimport \"a.proto\";\n",
            ),
            proto("c.proto", "import \"google/protobuf/timestamp.proto\";\n"),
            proto("d.proto", "message D {}\n"),
        ];
        let paths: Vec<&str> = proto_closure(&protos, "a.proto")
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(paths, ["a.proto", "b.proto", "c.proto"]);
    }
}
