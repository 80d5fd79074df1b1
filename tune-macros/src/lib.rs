//! Procedural macros of `tune-runtime`. Use them through `tune_runtime`, which re-exports
//! them; generated code refers to `tune_runtime::__private`.

use proc_macro::TokenStream;

mod ctxt;
mod metrics;
mod runtime_path;
mod space;
mod trainable;

/// Declares typed search spaces: config structs and enum spaces implementing `Space`.
/// See `docs/search-space.md`.
#[proc_macro]
pub fn search_space(input: TokenStream) -> TokenStream {
    space::expand(input.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Turns a struct (class API) or a function (function API) into a trainable.
/// See `docs/trainable.md`.
#[proc_macro_attribute]
pub fn trainable(args: TokenStream, input: TokenStream) -> TokenStream {
    trainable::expand(args.into(), input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `Metrics` for a struct of numeric fields. See `docs/trainable.md`.
#[proc_macro_derive(Metrics, attributes(metrics))]
pub fn derive_metrics(input: TokenStream) -> TokenStream {
    metrics::expand(input.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}
