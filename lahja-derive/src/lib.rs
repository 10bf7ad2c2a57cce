//! The `#[derive(Event)]` macro of [lahja](https://docs.rs/lahja).
//!
//! Use it through `lahja::Event`; this crate is an implementation detail and
//! its generated code names only `::lahja::__private::…` paths.
//!
//! The pipeline follows thiserror's derive: `ast` reads the item, `attr`
//! reads `#[event(...)]` and `#[request(...)]`, `valid` rejects what cannot
//! be an event, `expand` writes the impls, and `fallback` writes stub
//! impls beside the errors so that one mistake gives one error.

mod ast;
mod attr;
mod expand;
mod fallback;
mod schema;
mod valid;

use proc_macro::TokenStream;

/// Implements `lahja::Event` (and `lahja::Request` with
/// `#[request(response = T)]`) and registers the type in lahja's registry.
///
/// See the `lahja` crate for the documentation and examples.
#[proc_macro_derive(Event, attributes(event, request))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input).into()
}
