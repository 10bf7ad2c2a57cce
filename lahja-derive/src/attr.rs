//! The helper attributes: `#[event(name = "...")]` and
//! `#[request(response = Type)]`.

use syn::{Attribute, LitStr, Type};

/// What the helper attributes on one item say.
#[derive(Default)]
pub(crate) struct Attrs {
    /// `#[event(name = "...")]`: the pinned wire name.
    pub(crate) name: Option<LitStr>,
    /// `#[request(...)]` was written (even if malformed).
    pub(crate) request: Option<RequestAttr>,
}

pub(crate) struct RequestAttr {
    /// `response = Type`, when it was given and parsed.
    pub(crate) response: Option<Type>,
}

/// Reads every `#[event]` and `#[request]` attribute, collecting all errors.
pub(crate) fn parse(attrs: &[Attribute], errors: &mut Vec<syn::Error>) -> Attrs {
    let mut out = Attrs::default();
    let mut seen_event: Option<&Attribute> = None;
    for attr in attrs {
        if attr.path().is_ident("event") {
            if seen_event.is_some() {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "duplicate `#[event(...)]` attribute: write `name = \"...\"` once",
                ));
                continue;
            }
            seen_event = Some(attr);
            parse_event(attr, &mut out, errors);
        } else if attr.path().is_ident("request") {
            if out.request.is_some() {
                errors.push(syn::Error::new_spanned(
                    attr,
                    "duplicate `#[request(...)]` attribute: a request has one response type",
                ));
                continue;
            }
            out.request = Some(parse_request(attr, errors));
        }
    }
    out
}

fn parse_event(attr: &Attribute, out: &mut Attrs, errors: &mut Vec<syn::Error>) {
    if let syn::Meta::Path(_) = attr.meta {
        errors.push(syn::Error::new_spanned(
            attr,
            "expected `#[event(name = \"...\")]`",
        ));
        return;
    }
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("name") {
            let value = meta.value()?;
            let expr: syn::Expr = value.parse()?;
            let lit = match &expr {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(lit),
                    ..
                }) => lit.clone(),
                _ => {
                    return Err(syn::Error::new_spanned(
                        &expr,
                        "expected a string literal: `#[event(name = \"my_crate.MyEvent\")]`",
                    ));
                }
            };
            // The crate being compiled: only lahja itself may use its prefix.
            let in_lahja =
                std::env::var("CARGO_PKG_NAME").is_ok_and(|crate_name| crate_name == "lahja");
            if lit.value().starts_with("lahja.") && !in_lahja {
                return Err(syn::Error::new_spanned(
                    &lit,
                    "names starting with `lahja.` are reserved for lahja's own types: \
                     pick one of your own, such as `#[event(name = \"my_crate.MyEvent\")]`",
                ));
            }
            if out.name.is_some() {
                return Err(syn::Error::new_spanned(
                    &meta.path,
                    "duplicate `name` key in `#[event(...)]`",
                ));
            }
            if lit.value().is_empty() {
                return Err(syn::Error::new_spanned(
                    &lit,
                    "an event name cannot be empty",
                ));
            }
            out.name = Some(lit);
            Ok(())
        } else {
            Err(syn::Error::new_spanned(
                &meta.path,
                "unknown key in `#[event(...)]`: the only key is `name = \"...\"`",
            ))
        }
    });
    if let Err(e) = result {
        errors.push(e);
    }
}

fn parse_request(attr: &Attribute, errors: &mut Vec<syn::Error>) -> RequestAttr {
    let mut response: Option<Type> = None;
    if let syn::Meta::Path(_) = attr.meta {
        errors.push(syn::Error::new_spanned(
            attr,
            "missing response type: write `#[request(response = YourResponse)]`",
        ));
        return RequestAttr { response };
    }
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("response") {
            let ty: Type = meta.value()?.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected a type: `#[request(response = YourResponse)]`",
                )
            })?;
            if response.is_some() {
                return Err(syn::Error::new_spanned(
                    &meta.path,
                    "duplicate `response` key in `#[request(...)]`",
                ));
            }
            response = Some(ty);
            Ok(())
        } else {
            Err(syn::Error::new_spanned(
                &meta.path,
                "unknown key in `#[request(...)]`: the only key is `response = Type`",
            ))
        }
    });
    match result {
        Err(e) => errors.push(e),
        Ok(()) if response.is_none() => errors.push(syn::Error::new_spanned(
            attr,
            "missing response type: write `#[request(response = YourResponse)]`",
        )),
        Ok(()) => {}
    }
    RequestAttr { response }
}
