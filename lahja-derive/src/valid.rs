//! What cannot be an event: unions and generic types.

use crate::ast::Input;

/// The shape problems of `input` that make any impl impossible to write.
///
/// These are reported without a stub impl: a stub for a union or a generic
/// type would itself fail to type-check and add errors instead of hiding them.
pub(crate) fn shape_errors(input: &Input) -> Vec<syn::Error> {
    let mut errors = Vec::new();
    if let syn::Data::Union(data) = &input.original.data {
        errors.push(syn::Error::new_spanned(
            data.union_token,
            "unions cannot be events: use a struct or an enum",
        ));
    }
    let generics = &input.original.generics;
    if !generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &generics.params,
            "generic or lifetime-parameterised types cannot be events: an event has one wire \
             ID, so declare a concrete type per payload (e.g. `struct BlockNumbers(Vec<u64>)`)",
        ));
    } else if let Some(where_clause) = &generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "an event type cannot have a `where` clause",
        ));
    }
    errors
}
