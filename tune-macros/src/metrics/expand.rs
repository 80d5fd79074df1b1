//! Code generation for `#[derive(Metrics)]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::parse::MetricsStruct;

pub(crate) fn expand(model: &MetricsStruct, rt: &TokenStream) -> TokenStream {
    let ident = &model.ident;
    let vis = &model.vis;
    let names: Vec<&str> = model.fields.iter().map(|f| f.name.as_str()).collect();
    let handles = model.fields.iter().enumerate().map(|(index, field)| {
        let name = &field.name;
        let konst = format_ident!("{}", name.to_uppercase(), span = field.ident.span());
        let doc = format!("Typed handle on the `{name}` metric.");
        quote! {
            #[doc = #doc]
            #vis const #konst: #rt::__private::Metric<Self> = #rt::__private::Metric::new(#index, #name);
        }
    });
    let arms = model.fields.iter().enumerate().map(|(index, field)| {
        let ty = &field.ty;
        let member = &field.ident;
        // Spanned on the field's type: a non-numeric field is reported there.
        let value =
            quote_spanned!(ty.span()=> <#ty as #rt::__private::MetricValue>::to_f64(&self.#member));
        quote!(#index => #value,)
    });
    let count = model.fields.len();
    let rebuilt = model.fields.iter().enumerate().map(|(index, field)| {
        let ty = &field.ty;
        let member = &field.ident;
        let value = quote_spanned!(ty.span()=>
            <#ty as #rt::__private::MetricValue>::from_f64(__tune_values[#index]));
        quote!(#member: #value,)
    });
    quote! {
        #[automatically_derived]
        impl #ident {
            #(#handles)*
        }

        const _: () = {
            #[automatically_derived]
            impl #rt::__private::Metrics for #ident {
                const NAMES: &'static [&'static str] = &[#(#names),*];

                #[inline]
                fn value(&self, __tune_index: usize) -> f64 {
                    match __tune_index {
                        #(#arms)*
                        _ => ::core::f64::NAN,
                    }
                }

                fn from_values(__tune_values: &[f64]) -> ::core::option::Option<Self> {
                    if __tune_values.len() != #count {
                        return ::core::option::Option::None;
                    }
                    ::core::option::Option::Some(Self { #(#rebuilt)* })
                }
            }
        };
    }
}

/// An impl that lets the rest of the user's code compile while the errors are shown.
pub(crate) fn expand_dummy(input: &syn::DeriveInput, rt: &TokenStream) -> TokenStream {
    if !input.generics.params.is_empty() {
        return TokenStream::new();
    }
    let ident = &input.ident;
    quote! {
        const _: () = {
            impl #rt::__private::Metrics for #ident {
                const NAMES: &'static [&'static str] = &[];
                fn value(&self, _: usize) -> f64 {
                    ::core::f64::NAN
                }
            }
        };
    }
}
