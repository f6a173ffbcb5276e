//! Procedural macros of the Stele SDK: `#[contract]`, `#[event]` and
//! `#[contract_error]`. See the `stele-sdk` crate for how to use them.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use stele_host_api::spec::{
    ErrorSpec, ErrorVariant, EventSpec, MethodKind, MethodSpec, Param, SpecEntry,
};
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, Fields, FnArg, GenericArgument, ImplItem, Item, ItemEnum, ItemImpl,
    ItemStruct, Lit, Meta, Pat, PathArguments, ReturnType, Type, Visibility, parse_macro_input,
};

/// Marks a contract's state struct and its methods' `impl` block.
///
/// On the struct: every field is a storage collection (`Item`, `Map`,
/// `Vector`, `Set`) and gets the key prefix of its index. On the `impl`:
/// every `pub fn` taking `&self` (read-only) or `&mut self` becomes a wasm
/// export, a spec record and a method of the generated `<Name>Client`;
/// `#[init]` marks the deployment method, `#[migrate]` the upgrade hook.
#[proc_macro_attribute]
pub fn contract(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error(Span::call_site(), "#[contract] takes no arguments");
    }
    let result = match parse_macro_input!(item as Item) {
        Item::Struct(item) => contract_struct(item),
        Item::Impl(item) => contract_impl(item),
        other => Err(syn::Error::new(
            other.span(),
            "#[contract] goes on the state struct and on its impl block",
        )),
    };
    result.unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Makes a struct an event: the first topic is the BLAKE3 of its name,
/// fields marked `#[topic]` follow as topics, the rest is borsh data.
#[proc_macro_attribute]
pub fn event(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error(Span::call_site(), "#[event] takes no arguments");
    }
    event_struct(parse_macro_input!(item as ItemStruct))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes an enum a contract error: each variant gets a stable code (its
/// position, from 1) and a message (`#[error("...")]`, or its name).
#[proc_macro_attribute]
pub fn contract_error(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error(Span::call_site(), "#[contract_error] takes no arguments");
    }
    error_enum(parse_macro_input!(item as ItemEnum))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes a struct or enum usable as a method argument, return value or
/// stored value: implements the SDK's `Encode` and `Decode` (the borsh
/// wire format: fields in order; enums a one-byte variant index, then the
/// variant's fields), so a contract needs no codec dependency of its own.
#[proc_macro_attribute]
pub fn data(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error(Span::call_site(), "#[data] takes no arguments");
    }
    data_item(parse_macro_input!(item as Item))
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// `Encode` and `Decode` for a struct or an enum.
fn data_item(item: Item) -> syn::Result<Tokens> {
    let (ident, mut generics, encode_body, decode_body) = match &item {
        Item::Struct(item) => {
            let (pattern, encode, decode) = fields_code(quote!(Self), &item.fields);
            (
                item.ident.clone(),
                item.generics.clone(),
                quote! { let #pattern = self; #(#encode)* },
                quote! { ::core::option::Option::Some(#decode) },
            )
        }
        Item::Enum(item) => {
            if item.variants.len() > 256 {
                return Err(syn::Error::new(
                    item.span(),
                    "#[data] enums have at most 256 variants (the tag is one byte)",
                ));
            }
            let mut encode_arms = Vec::new();
            let mut decode_arms = Vec::new();
            for (index, variant) in item.variants.iter().enumerate() {
                let tag = index as u8;
                let name = &variant.ident;
                let (pattern, encode, decode) = fields_code(quote!(Self::#name), &variant.fields);
                encode_arms.push(quote! {
                    #pattern => {
                        ::stele_sdk::codec::put(out, &[#tag]);
                        #(#encode)*
                    }
                });
                decode_arms.push(quote! { #tag => #decode, });
            }
            (
                item.ident.clone(),
                item.generics.clone(),
                quote! { match self { #(#encode_arms)* } },
                quote! {
                    ::core::option::Option::Some(
                        match <u8 as ::stele_sdk::codec::Decode>::decode(input)? {
                            #(#decode_arms)*
                            _ => return ::core::option::Option::None,
                        }
                    )
                },
            )
        }
        other => {
            return Err(syn::Error::new(
                other.span(),
                "#[data] goes on a struct or an enum",
            ));
        }
    };
    let type_params: Vec<_> = generics
        .type_params()
        .map(|param| param.ident.clone())
        .collect();
    let (impl_generics, type_generics, _) = generics.split_for_impl();
    let impl_generics = quote!(#impl_generics);
    let type_generics = quote!(#type_generics);
    let where_clause = generics.make_where_clause();
    let mut encode_where = where_clause.clone();
    let mut decode_where = where_clause.clone();
    for param in &type_params {
        encode_where
            .predicates
            .push(syn::parse_quote!(#param: ::stele_sdk::codec::Encode));
        decode_where
            .predicates
            .push(syn::parse_quote!(#param: ::stele_sdk::codec::Decode));
    }
    Ok(quote! {
        #item

        impl #impl_generics ::stele_sdk::codec::Encode for #ident #type_generics #encode_where {
            #[allow(unused_variables)]
            fn encode(&self, out: &mut ::stele_sdk::prelude::Vec<u8>) {
                #encode_body
            }
        }

        impl #impl_generics ::stele_sdk::codec::Decode for #ident #type_generics #decode_where {
            #[allow(unused_variables)]
            fn decode(
                input: &mut ::stele_sdk::codec::Input<'_>,
            ) -> ::core::option::Option<Self> {
                #decode_body
            }
        }
    })
}

/// For the fields of a struct or variant `path`: a pattern binding each
/// field, the statements encoding them in order, and an expression
/// decoding them in order (struct expression fields evaluate as written).
fn fields_code(path: Tokens, fields: &Fields) -> (Tokens, Vec<Tokens>, Tokens) {
    let bindings: Vec<_> = (0..fields.len())
        .map(|index| format_ident!("field_{}", index))
        .collect();
    let encode = bindings
        .iter()
        .map(|binding| quote! { ::stele_sdk::codec::Encode::encode(#binding, out); })
        .collect();
    let decode_one = quote! { ::stele_sdk::codec::Decode::decode(input)? };
    match fields {
        Fields::Named(named) => {
            let names: Vec<_> = named
                .named
                .iter()
                .map(|field| field.ident.clone())
                .collect();
            (
                quote! { #path { #(#names: #bindings),* } },
                encode,
                quote! { #path { #(#names: #decode_one),* } },
            )
        }
        Fields::Unnamed(_) => {
            let decodes = bindings.iter().map(|_| &decode_one);
            (
                quote! { #path ( #(#bindings),* ) },
                encode,
                quote! { #path ( #(#decodes),* ) },
            )
        }
        Fields::Unit => (quote! { #path }, encode, quote! { #path }),
    }
}

fn error(span: Span, message: &str) -> TokenStream {
    syn::Error::new(span, message).into_compile_error().into()
}

/// A spec record as a `#[used]` static in the `stele.spec` section, only
/// in the contract's own wasm (not when used as a library, not natively).
fn spec_static(name: &str, entry: &SpecEntry) -> Tokens {
    let bytes = entry.to_record();
    let len = bytes.len();
    let ident = format_ident!("__STELE_SPEC_{}", name.to_uppercase());
    quote! {
        #[cfg(all(target_arch = "wasm32", not(feature = "library")))]
        #[unsafe(link_section = "stele.spec")]
        static #ident: [u8; #len] = [#(#bytes),*];
    }
}

/// A type as readable text: `Vec<u8>`, `Option<(Address, u128)>`.
fn type_text(ty: &Type) -> String {
    quote!(#ty).to_string().replace(' ', "").replace(',', ", ")
}

fn docs(attrs: &[Attribute]) -> String {
    attrs
        .iter()
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(meta) if meta.path.is_ident("doc") => match &meta.value {
                Expr::Lit(lit) => match &lit.lit {
                    Lit::Str(text) => Some(text.value().trim().to_string()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn contract_struct(item: ItemStruct) -> syn::Result<Tokens> {
    let Fields::Named(fields) = &item.fields else {
        return Err(syn::Error::new(
            item.span(),
            "a contract's state has named fields, one per collection",
        ));
    };
    if fields.named.len() > 256 {
        return Err(syn::Error::new(
            item.span(),
            "a contract's state has at most 256 fields",
        ));
    }
    let name = &item.ident;
    let inits = fields.named.iter().enumerate().map(|(idx, field)| {
        let field_name = field.ident.as_ref().expect("named field");
        let ty = &field.ty;
        let prefix = idx as u8;
        quote! { #field_name: <#ty>::new(&[#prefix]) }
    });
    let spec = spec_static("contract", &SpecEntry::Contract(name.to_string()));
    Ok(quote! {
        #item

        impl ::stele_sdk::State for #name {
            #[inline(never)]
            fn load() -> Self {
                Self { #(#inits),* }
            }
        }

        #spec
    })
}

/// What a method returns, as the macro needs to know it.
enum Returns {
    Nothing,
    Value(Type),
    /// `Result<T, E>`, or an alias `Result<T>` whose error type the macro
    /// cannot see.
    Result {
        ok: Type,
        err: Option<Type>,
    },
}

fn returns(output: &ReturnType) -> Returns {
    let ReturnType::Type(_, ty) = output else {
        return Returns::Nothing;
    };
    if let Type::Path(path) = ty.as_ref()
        && let Some(last) = path.path.segments.last()
        && last.ident == "Result"
        && let PathArguments::AngleBracketed(args) = &last.arguments
    {
        let types: Vec<&Type> = args
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .collect();
        match types.as_slice() {
            [ok, err] => {
                return Returns::Result {
                    ok: (*ok).clone(),
                    err: Some((*err).clone()),
                };
            }
            [ok] => {
                return Returns::Result {
                    ok: (*ok).clone(),
                    err: None,
                };
            }
            _ => {}
        }
    }
    if let Type::Tuple(tuple) = ty.as_ref()
        && tuple.elems.is_empty()
    {
        return Returns::Nothing;
    }
    Returns::Value((**ty).clone())
}

fn take_flag(attrs: &mut Vec<Attribute>, name: &str) -> bool {
    let before = attrs.len();
    attrs.retain(|attr| !attr.path().is_ident(name));
    attrs.len() != before
}

fn contract_impl(mut item: ItemImpl) -> syn::Result<Tokens> {
    let self_ty = item.self_ty.clone();
    let Type::Path(self_path) = self_ty.as_ref() else {
        return Err(syn::Error::new(
            self_ty.span(),
            "#[contract] goes on `impl StateStruct`",
        ));
    };
    let contract_name = self_path
        .path
        .segments
        .last()
        .expect("a path has a segment")
        .ident
        .clone();
    let client = format_ident!("{}Client", contract_name);
    let mut exports = Vec::new();
    let mut client_methods = Vec::new();
    let mut specs = Vec::new();
    let mut n_init = 0;

    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let is_init = take_flag(&mut method.attrs, "init");
        let is_migrate = take_flag(&mut method.attrs, "migrate");
        if !matches!(method.vis, Visibility::Public(_)) {
            if is_init || is_migrate {
                return Err(syn::Error::new(
                    method.sig.span(),
                    "#[init] and #[migrate] methods must be `pub`",
                ));
            }
            continue;
        }
        let sig = &method.sig;
        let method_name = &sig.ident;
        let receiver = match sig.inputs.first() {
            Some(FnArg::Receiver(receiver)) if receiver.reference.is_some() => receiver,
            _ => {
                return Err(syn::Error::new(
                    sig.span(),
                    "a contract method takes `&self` (read-only) or `&mut self`; make helpers private",
                ));
            }
        };
        let mutable = receiver.mutability.is_some();
        let kind = match (is_init, is_migrate, mutable) {
            (true, true, _) => {
                return Err(syn::Error::new(
                    sig.span(),
                    "a method is #[init] or #[migrate], not both",
                ));
            }
            (true, false, _) => MethodKind::Init,
            (false, true, _) => MethodKind::Migrate,
            (false, false, true) => MethodKind::Call,
            (false, false, false) => MethodKind::View,
        };
        if kind == MethodKind::Init {
            n_init += 1;
        }
        let export_name = match kind {
            MethodKind::Init => stele_host_api::abi::INIT_EXPORT.to_string(),
            MethodKind::Migrate => stele_host_api::abi::MIGRATE_EXPORT.to_string(),
            _ => method_name.to_string(),
        };
        if export_name.len() > stele_host_api::limits::METHOD_NAME_BYTES_MAX {
            return Err(syn::Error::new(
                method_name.span(),
                "method names have at most 64 bytes",
            ));
        }
        if export_name.starts_with(stele_host_api::abi::RESERVED_EXPORT_PREFIX) {
            return Err(syn::Error::new(
                method_name.span(),
                "names starting with `__stele` are reserved",
            ));
        }

        let mut arg_names = Vec::new();
        let mut arg_types = Vec::new();
        for input in sig.inputs.iter().skip(1) {
            let FnArg::Typed(typed) = input else {
                unreachable!("only the first argument is a receiver")
            };
            let Pat::Ident(ident) = typed.pat.as_ref() else {
                return Err(syn::Error::new(
                    typed.pat.span(),
                    "contract method arguments are plain names",
                ));
            };
            arg_names.push(ident.ident.clone());
            arg_types.push((*typed.ty).clone());
        }

        let returns = returns(&sig.output);
        let export_fn = format_ident!("__stele_export_{}", method_name);
        let method_text = method_name.to_string();
        let load = if mutable {
            quote! { let mut __stele_state = <#self_ty as ::stele_sdk::State>::load(); }
        } else {
            quote! { let __stele_state = <#self_ty as ::stele_sdk::State>::load(); }
        };
        let finish = match &returns {
            Returns::Nothing => quote! { let () = __stele_result; },
            Returns::Value(_) => quote! { ::stele_sdk::export::ret(&__stele_result); },
            Returns::Result { .. } => quote! {
                match __stele_result {
                    ::core::result::Result::Ok(value) => ::stele_sdk::export::ret(&value),
                    ::core::result::Result::Err(error) => ::stele_sdk::export::fail(&error),
                }
            },
        };
        let decode_args = if arg_names.is_empty() {
            quote! { ::stele_sdk::export::no_args(#method_text); }
        } else {
            quote! {
                let mut __stele_input = ::stele_sdk::codec::Input::new(::stele_sdk::export::input());
                #(let #arg_names: #arg_types = ::stele_sdk::export::arg(&mut __stele_input, #method_text);)*
                ::stele_sdk::export::end_args(&__stele_input, #method_text);
            }
        };
        exports.push(quote! {
            #[cfg(all(target_arch = "wasm32", not(feature = "library")))]
            #[doc(hidden)]
            #[unsafe(export_name = #export_name)]
            pub extern "C" fn #export_fn() {
                #decode_args
                #load
                let __stele_result = __stele_state.#method_name(#(#arg_names),*);
                #finish
            }
        });

        let (ok_type, error_type) = match &returns {
            Returns::Nothing => (syn::parse_quote!(()), None),
            Returns::Value(ty) => (ty.clone(), None),
            Returns::Result { ok, err } => (ok.clone(), err.clone()),
        };
        if matches!(kind, MethodKind::View | MethodKind::Call) {
            let doc = format!("Calls `{export_name}` on the contract.");
            client_methods.push(quote! {
                #[doc = #doc]
                pub fn #method_name(&self, #(#arg_names: #arg_types),*)
                    -> ::core::result::Result<#ok_type, ::stele_sdk::CallError>
                {
                    let input = ::stele_sdk::codec::to_vec(&(#(#arg_names,)*));
                    let reply = self.backend.call(&self.address, #export_name, input)?;
                    ::stele_sdk::export::reply::<#ok_type>(&reply)
                }
            });
        }
        let spec = MethodSpec {
            name: export_name.clone(),
            kind,
            args: arg_names
                .iter()
                .zip(&arg_types)
                .map(|(name, ty)| Param {
                    name: name.to_string(),
                    ty: type_text(ty),
                })
                .collect(),
            returns: type_text(&ok_type),
            error: error_type.as_ref().map(type_text),
            doc: docs(&method.attrs),
        };
        specs.push(spec_static(
            &format!("method_{export_name}"),
            &SpecEntry::Method(spec),
        ));
    }
    if n_init > 1 {
        return Err(syn::Error::new(
            item.span(),
            "a contract has at most one #[init] method",
        ));
    }

    let client_doc = format!("Typed client of the `{contract_name}` contract.");
    Ok(quote! {
        #item

        #(#exports)*

        #[doc = #client_doc]
        pub struct #client<B = ::stele_sdk::Host> {
            /// The contract's address.
            pub address: ::stele_sdk::Address,
            /// How calls travel.
            pub backend: B,
        }

        impl<B: ::stele_sdk::Backend> #client<B> {
            /// A client of the contract at `address`, calling through `backend`.
            pub fn new(address: ::stele_sdk::Address, backend: B) -> Self {
                Self { address, backend }
            }

            #(#client_methods)*
        }

        impl #client<::stele_sdk::Host> {
            /// A client for cross-contract calls that forwards all gas left.
            pub fn at(address: ::stele_sdk::Address) -> Self {
                Self::new(address, ::stele_sdk::Host::default())
            }
        }

        #(#specs)*
    })
}

fn event_struct(mut item: ItemStruct) -> syn::Result<Tokens> {
    let name = item.ident.clone();
    let Fields::Named(fields) = &mut item.fields else {
        return Err(syn::Error::new(item.span(), "an event has named fields"));
    };
    let mut topics = Vec::new();
    let mut data = Vec::new();
    let mut spec = EventSpec {
        name: name.to_string(),
        topics: Vec::new(),
        data: Vec::new(),
    };
    for field in &mut fields.named {
        let field_name = field.ident.clone().expect("named field");
        let param = Param {
            name: field_name.to_string(),
            ty: type_text(&field.ty),
        };
        if take_flag(&mut field.attrs, "topic") {
            topics.push(field_name);
            spec.topics.push(param);
        } else {
            data.push(field_name);
            spec.data.push(param);
        }
    }
    if topics.len() + 1 > stele_host_api::limits::EVENT_TOPICS_MAX {
        return Err(syn::Error::new(
            item.span(),
            "an event has at most 3 #[topic] fields (the name is the first topic)",
        ));
    }
    let name_text = name.to_string();
    let name_hash = *blake3::hash(name_text.as_bytes()).as_bytes();
    let n_topics = topics.len() + 1;
    let spec = spec_static(&format!("event_{name_text}"), &SpecEntry::Event(spec));
    Ok(quote! {
        #item

        impl ::stele_sdk::Event for #name {
            const NAME: &'static str = #name_text;

            fn topics(&self) -> ::stele_sdk::prelude::Vec<[u8; 32]> {
                ::stele_sdk::prelude::vec![
                    [#(#name_hash),*],
                    #(::stele_sdk::event::Topic::to_topic(&self.#topics)),*
                ]
            }

            fn data(&self) -> ::stele_sdk::prelude::Vec<u8> {
                ::stele_sdk::codec::to_vec(&(#(&self.#data,)*))
            }

            fn publish(&self) {
                static NAME_HASH: [u8; 32] = [#(#name_hash),*];
                let mut out = ::stele_sdk::prelude::Vec::new();
                ::stele_sdk::codec::reserve(&mut out, #n_topics * 32 + 32);
                ::stele_sdk::codec::put(&mut out, &NAME_HASH);
                #(::stele_sdk::event::Topic::put_topic(&self.#topics, &mut out);)*
                ::stele_sdk::codec::Encode::encode(&(#(&self.#data,)*), &mut out);
                ::stele_sdk::event::publish_encoded(out.leak(), #n_topics);
            }
        }

        #spec
    })
}

fn error_enum(mut item: ItemEnum) -> syn::Result<Tokens> {
    let name = item.ident.clone();
    let mut spec = ErrorSpec {
        name: name.to_string(),
        variants: Vec::new(),
    };
    let mut arms_variant = Vec::new();
    let mut arms_code = Vec::new();
    let mut arms_message = Vec::new();
    let mut arms_full = Vec::new();
    for (idx, variant) in item.variants.iter_mut().enumerate() {
        let variant_name = variant.ident.clone();
        let mut message = variant_name.to_string();
        let mut kept = Vec::new();
        for attr in variant.attrs.drain(..) {
            if attr.path().is_ident("error") {
                let text: syn::LitStr = attr.parse_args()?;
                message = text.value();
            } else {
                kept.push(attr);
            }
        }
        variant.attrs = kept;
        let code = idx as u32 + 1;
        let pattern = match &variant.fields {
            Fields::Unit => quote! { Self::#variant_name },
            Fields::Unnamed(_) => quote! { Self::#variant_name(..) },
            Fields::Named(_) => quote! { Self::#variant_name { .. } },
        };
        let variant_text = variant_name.to_string();
        arms_variant.push(quote! { #pattern => #variant_text });
        arms_code.push(quote! { #pattern => #code });
        arms_message.push(quote! { #pattern => #message });
        let full = format!("{name}::{variant_name}: {message}");
        arms_full.push(quote! { #pattern => #full });
        spec.variants.push(ErrorVariant {
            code,
            name: variant_text,
            message,
        });
    }
    let name_text = name.to_string();
    let spec = spec_static(&format!("error_{name_text}"), &SpecEntry::Error(spec));
    Ok(quote! {
        #item

        impl ::stele_sdk::ContractError for #name {
            fn enum_name(&self) -> &'static str {
                #name_text
            }

            fn variant(&self) -> &'static str {
                match self { #(#arms_variant),* }
            }

            fn code(&self) -> u32 {
                match self { #(#arms_code),* }
            }

            fn message(&self) -> &'static str {
                match self { #(#arms_message),* }
            }

            fn abort_message(&self) -> &'static str {
                match self { #(#arms_full),* }
            }
        }

        #spec
    })
}
