//! The schema fingerprint: a hash of the type's shape as written.
//!
//! The shape string lists, in order, the variant and field names, the field
//! type tokens, enum discriminants, and every `#[serde(...)]` attribute
//! (they change the wire without changing the fields). It does not look
//! inside the field types: a change within a nested struct, or `Vec<u8>`
//! written as `std::vec::Vec<u8>`, is not seen / is seen as a change.

use quote::ToTokens;
use std::fmt::Write;

/// FNV-1a 64 over `"lahja-schema/1\0"` followed by the shape string.
pub(crate) fn fingerprint(input: &syn::DeriveInput) -> u64 {
    let shape = shape(input);
    fnv1a64(b"lahja-schema/1\0".iter().chain(shape.as_bytes()))
}

fn fnv1a64<'a>(bytes: impl Iterator<Item = &'a u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The canonical text that the fingerprint hashes (tokens re-printed by
/// `proc_macro2`, so formatting and comments do not matter).
pub(crate) fn shape(input: &syn::DeriveInput) -> String {
    let mut out = String::new();
    serde_attrs(&input.attrs, &mut out);
    match &input.data {
        syn::Data::Struct(data) => {
            out.push_str("struct");
            fields(&data.fields, &mut out);
        }
        syn::Data::Enum(data) => {
            out.push_str("enum{");
            for variant in &data.variants {
                serde_attrs(&variant.attrs, &mut out);
                out.push_str(&variant.ident.to_string());
                fields(&variant.fields, &mut out);
                if let Some((_, discriminant)) = &variant.discriminant {
                    let _ = write!(out, "={}", discriminant.to_token_stream());
                }
                out.push(',');
            }
            out.push('}');
        }
        syn::Data::Union(_) => out.push_str("union"),
    }
    out
}

fn fields(fields: &syn::Fields, out: &mut String) {
    let (open, close) = match fields {
        syn::Fields::Named(_) => ('{', '}'),
        syn::Fields::Unnamed(_) => ('(', ')'),
        syn::Fields::Unit => return,
    };
    out.push(open);
    for field in fields {
        serde_attrs(&field.attrs, out);
        if let Some(ident) = &field.ident {
            let _ = write!(out, "{ident}:");
        }
        let _ = write!(out, "{},", field.ty.to_token_stream());
    }
    out.push(close);
}

fn serde_attrs(attrs: &[syn::Attribute], out: &mut String) {
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = write!(out, "#[{}]", attr.meta.to_token_stream());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(src: &str) -> String {
        shape(&syn::parse_str(src).unwrap())
    }

    #[test]
    fn shape_lists_names_types_and_serde_attributes() {
        assert_eq!(
            shape_of("struct A { #[serde(rename = \"x\")] a: u64, b: Vec<u8> }"),
            "struct{#[serde (rename = \"x\")]a:u64,b:Vec < u8 >,}"
        );
        assert_eq!(shape_of("struct T(u8, String);"), "struct(u8,String,)");
        assert_eq!(shape_of("struct U;"), "struct");
        assert_eq!(
            shape_of("enum E { A, B(u8), C { x: i32 } }"),
            "enum{A,B(u8,),C{x:i32,},}"
        );
    }

    #[test]
    fn fingerprint_ignores_formatting_but_not_fields() {
        let a = fingerprint(&syn::parse_str("struct A { a: u64 }").unwrap());
        let same = fingerprint(&syn::parse_str("struct A {\n  a : u64, // c\n}").unwrap());
        let renamed = fingerprint(&syn::parse_str("struct A { b: u64 }").unwrap());
        let retyped = fingerprint(&syn::parse_str("struct A { a: u32 }").unwrap());
        assert_eq!(a, same);
        assert_ne!(a, renamed);
        assert_ne!(a, retyped);
    }
}
