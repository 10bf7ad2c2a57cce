//! What to emit beside the errors, so that one mistake gives one error.

use proc_macro2::TokenStream;
use quote::quote;

/// The errors plus a placeholder `impl Event` (and `impl Request` when the
/// response type could be read), so that every `subscribe::<T>()` or
/// `request(T)` elsewhere in the crate does not report "T is not an event"
/// on top of the real mistake.
pub(crate) fn expand(
    ident: &syn::Ident,
    response: Option<&syn::Type>,
    errors: Vec<syn::Error>,
) -> TokenStream {
    let errors = errors.into_iter().map(syn::Error::into_compile_error);
    let request = response.map(|response| {
        quote! {
            impl ::lahja::Request for #ident {
                type Response = #response;
            }
        }
    });
    quote! {
        #(#errors)*
        impl ::lahja::Event for #ident {
            const NAME: &'static str = "<invalid event>";
            const ID: ::lahja::EventId = ::lahja::EventId::of(<Self as ::lahja::Event>::NAME);
            const SCHEMA: u64 = 0;
        }
        #request
    }
}
