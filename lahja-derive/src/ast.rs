//! The derive input as this macro sees it: a named item with a shape.

use crate::attr::{self, Attrs};

/// A parsed `#[derive(Event)]` input.
pub(crate) struct Input<'a> {
    pub(crate) original: &'a syn::DeriveInput,
    pub(crate) ident: &'a syn::Ident,
    pub(crate) attrs: Attrs,
}

impl<'a> Input<'a> {
    /// Reads the item and its helper attributes; attribute errors are
    /// collected into `errors` and the item is still returned.
    pub(crate) fn from_syn(original: &'a syn::DeriveInput, errors: &mut Vec<syn::Error>) -> Self {
        Input {
            original,
            ident: &original.ident,
            attrs: attr::parse(&original.attrs, errors),
        }
    }
}
