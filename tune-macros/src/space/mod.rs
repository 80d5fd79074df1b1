//! `search_space!`: typed config structs and enum spaces with their `Space` impls.
//!
//! The pipeline is `parse` (syntax into our model, spans kept), `validate` (every
//! compile-time check, errors accumulated), `expand` (code generation only).

mod expand;
mod parse;
mod types;
mod validate;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use crate::ctxt::Ctxt;

/// Expands one `search_space! { ... }` invocation. Only a syntax error is returned as
/// `Err`; mistakes in domains come back as `compile_error!`s next to dummy impls.
pub(crate) fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let raw: parse::RawInput = syn::parse2(input)?;
    let mut cx = Ctxt::new();
    let model = parse::from_syn(raw);
    validate::validate(&model, &mut cx);
    let rt = match &model.krate {
        Some(path) => path.to_token_stream(),
        None => crate::runtime_path::runtime_path(),
    };
    if cx.has_errors() {
        let dummy = expand::expand_dummy(&model, &rt);
        let errors = cx.into_compile_errors();
        return Ok(quote! { #errors #dummy });
    }
    Ok(expand::expand(&model, &rt))
}
