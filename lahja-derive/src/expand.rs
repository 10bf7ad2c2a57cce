//! The generated impls and the registry entry.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::{ast::Input, fallback, schema, valid};

/// Expands `#[derive(Event)]`; never panics, errors become `compile_error!`.
pub(crate) fn derive(original: &syn::DeriveInput) -> TokenStream {
    let mut errors = Vec::new();
    let input = Input::from_syn(original, &mut errors);

    let shape_errors = valid::shape_errors(&input);
    if !shape_errors.is_empty() {
        errors.extend(shape_errors);
        return errors
            .into_iter()
            .map(syn::Error::into_compile_error)
            .collect();
    }
    let response = input
        .attrs
        .request
        .as_ref()
        .and_then(|r| r.response.as_ref());
    if !errors.is_empty() {
        return fallback::expand(input.ident, response, errors);
    }
    impls(&input, response)
}

fn impls(input: &Input, response: Option<&syn::Type>) -> TokenStream {
    let ident = input.ident;
    let rust_type = quote!(::core::concat!(
        ::core::module_path!(),
        "::",
        ::core::stringify!(#ident)
    ));
    let name = match &input.attrs.name {
        Some(pinned) => quote!(#pinned),
        None => rust_type.clone(),
    };
    let schema = schema::fingerprint(input.original);
    let doc_schema = format!("Shape: `{}`", schema::shape(input.original));

    // The response type is spanned at the user's tokens, so a response that
    // is not an event is reported there.
    // lahja's own types are never suggested to a user who forgot a derive.
    let builtin = input
        .attrs
        .name
        .as_ref()
        .is_some_and(|name| name.value().starts_with("lahja."))
        .then(|| quote!(#[diagnostic::do_not_recommend]));
    let send_json = match response {
        Some(_) => quote!(::lahja::__private::request_json::<#ident>),
        None => quote!(::lahja::__private::send_json::<#ident>),
    };
    let (request_impl, info) = match response {
        Some(response) => (
            quote_spanned! {response.span()=>
                #builtin
                impl ::lahja::Request for #ident {
                    type Response = #response;
                }
            },
            quote!(::lahja::__private::request_info::<#ident>(#rust_type)),
        ),
        None => (
            quote!(),
            quote!(::lahja::__private::event_info::<#ident>(#rust_type)),
        ),
    };

    quote! {
        #[doc = #doc_schema]
        #builtin
        impl ::lahja::Event for #ident {
            const NAME: &'static str = #name;
            const ID: ::lahja::EventId = ::lahja::EventId::of(<Self as ::lahja::Event>::NAME);
            const SCHEMA: u64 = #schema;
        }
        #request_impl
        ::lahja::__private::inventory::submit! { #info }
        ::lahja::__private::inventory::submit! {
            ::lahja::__private::format_tracer::<#ident>()
        }
        // How a tool sees a value: `Debug` where the type has it (autoref
        // specialization picks it, the type being concrete here), else
        // nothing (the tool shows size and bytes).
        ::lahja::__private::inventory::submit! {
            ::lahja::__private::Renderer::new(<#ident as ::lahja::Event>::ID, {
                fn render(body: &[u8]) -> ::core::option::Option<::std::string::String> {
                    #[allow(unused_imports)]
                    use ::lahja::__private::{RenderDebug as _, RenderNothing as _};
                    let value = ::lahja::__private::decode::<#ident>(body)?;
                    (&::lahja::__private::Render(&value)).lahja_render()
                }
                render
            })
        }
        // How a tool sends one written as JSON (`lahja send`, `lahja request`).
        ::lahja::__private::inventory::submit! {
            ::lahja::__private::JsonSender::new(<#ident as ::lahja::Event>::ID, #send_json)
        }
    }
}
