//! `#[trainable]`: on a struct (class API) or a function (function API).
//!
//! `parse` turns the attribute and the item into a [`parse::Model`], `validate` reports every
//! mistake at once, `expand` generates the trait impls and the save/restore `#[test]`.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;

use crate::runtime_path::runtime_path;

/// Expands `#[trainable(args)] item`. Errors come back as `compile_error!` beside the
/// original item (and whatever impls can still be generated), so the user sees the real
/// mistake and not a cascade of missing-impl errors.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Vec::new();
    let args = parse::parse_args(args, &mut errors);
    let item: syn::Item = syn::parse2(input)?;
    let Some(model) = parse::parse_item(item.clone(), &mut errors) else {
        let errors = combine(errors);
        return Ok(quote!(#item #errors));
    };
    validate::validate(&args, &model, &mut errors);
    let runtime = args.krate.clone().map_or_else(runtime_path, |path| quote!(#path));
    if errors.is_empty() {
        Ok(expand::expand(&args, &model, &runtime))
    } else {
        let dummy = expand::expand_dummy(&args, &model, &runtime);
        let errors = combine(errors);
        Ok(quote!(#dummy #errors))
    }
}

fn combine(errors: Vec<syn::Error>) -> TokenStream {
    errors.into_iter().map(|e| e.into_compile_error()).collect()
}
