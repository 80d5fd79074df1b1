//! Where generated code finds the runtime crate.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// The path of the `tune-runtime` crate as the calling crate names it: resolved with
/// `proc-macro-crate` so a renamed dependency works, `::tune_runtime` when it cannot be
/// found (inside the runtime's own crate, which declares `extern crate self as tune_runtime`).
/// A macro's `crate = path` argument overrides it.
pub(crate) fn runtime_path() -> TokenStream {
    use proc_macro_crate::{FoundCrate, crate_name};
    match crate_name("tune-runtime") {
        Ok(FoundCrate::Name(name)) => {
            let ident = format_ident!("{}", name);
            quote!(::#ident)
        }
        Ok(FoundCrate::Itself) | Err(_) => quote!(::tune_runtime),
    }
}
