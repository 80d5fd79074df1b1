//! `#[derive(Metrics)]`: a struct of numeric fields becomes a typed metrics struct.
//!
//! `parse` reads the struct into a [`parse::MetricsStruct`], `validate` reports every
//! mistake, `expand` generates `impl Metrics` and one `Metric<Self>` handle per field.

mod expand;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;

use crate::runtime_path::runtime_path;

pub(crate) fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: syn::DeriveInput = syn::parse2(input)?;
    let mut errors = Vec::new();
    let model = parse::parse_input(&input, &mut errors);
    validate::validate(&input, &model, &mut errors);
    let runtime = model.krate.clone().map_or_else(runtime_path, |path| quote!(#path));
    let code = if errors.is_empty() {
        expand::expand(&model, &runtime)
    } else {
        expand::expand_dummy(&input, &runtime)
    };
    // Reported beside the expansion, which they do not break.
    validate::check_names(&model, &mut errors);
    let errors: TokenStream = errors.into_iter().map(|e| e.into_compile_error()).collect();
    Ok(quote!(#code #errors))
}
