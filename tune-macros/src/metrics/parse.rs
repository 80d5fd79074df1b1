//! From the derive input to the model of a metrics struct.

use syn::Ident;

/// A struct deriving `Metrics`.
pub(crate) struct MetricsStruct {
    pub ident: Ident,
    pub vis: syn::Visibility,
    pub fields: Vec<MetricField>,
    /// `#[metrics(crate = path)]`.
    pub krate: Option<syn::Path>,
}

/// A named field: one metric.
pub(crate) struct MetricField {
    pub ident: Ident,
    /// The field name as written to results (`r#type` is `type`).
    pub name: String,
    pub ty: syn::Type,
}

pub(crate) fn parse_input(input: &syn::DeriveInput, errors: &mut Vec<syn::Error>) -> MetricsStruct {
    let mut krate = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("metrics")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                krate = Some(meta.value()?.parse::<syn::Path>()?);
                Ok(())
            } else {
                Err(meta
                    .error("unknown option of `#[metrics(..)]`; the only one is `crate = path`"))
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    let mut fields = Vec::new();
    if let syn::Data::Struct(data) = &input.data {
        if let syn::Fields::Named(named) = &data.fields {
            for field in &named.named {
                if let Some(ident) = &field.ident {
                    let name = ident.to_string();
                    let name = name.strip_prefix("r#").map(str::to_owned).unwrap_or(name);
                    fields.push(MetricField { ident: ident.clone(), name, ty: field.ty.clone() });
                }
            }
        }
    }
    MetricsStruct { ident: input.ident.clone(), vis: input.vis.clone(), fields, krate }
}
