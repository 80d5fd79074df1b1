//! Checks of a metrics struct.

use super::parse::MetricsStruct;

/// The fields the runner writes with every result (`Auto::ALL` of the runtime, then
/// `trial_id` and `done` of `result.json` and `progress.csv`). A metric of the same name
/// would write its key twice.
const AUTOMATIC: &[&str] =
    &["training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "trial_id", "done"];

pub(crate) fn validate(
    input: &syn::DeriveInput,
    model: &MetricsStruct,
    errors: &mut Vec<syn::Error>,
) {
    match &input.data {
        syn::Data::Struct(data) => match &data.fields {
            syn::Fields::Named(named) if named.named.is_empty() => errors.push(syn::Error::new_spanned(
                &input.ident,
                "a metrics struct needs at least one field: add the numbers `step` reports, e.g. \
                 `loss: f64`",
            )),
            syn::Fields::Named(_) => {}
            syn::Fields::Unnamed(fields) => errors.push(syn::Error::new_spanned(
                fields,
                "`Metrics` needs named fields: each field's name is the metric's name, e.g. \
                 `struct MyMetrics { loss: f64 }`",
            )),
            syn::Fields::Unit => errors.push(syn::Error::new_spanned(
                &input.ident,
                "`Metrics` needs named fields: each field's name is the metric's name, e.g. \
                 `struct MyMetrics { loss: f64 }`",
            )),
        },
        syn::Data::Enum(data) => errors.push(syn::Error::new(
            data.enum_token.span,
            "`Metrics` can only be derived for a struct with named numeric fields, not an enum",
        )),
        syn::Data::Union(data) => errors.push(syn::Error::new(
            data.union_token.span,
            "`Metrics` can only be derived for a struct with named numeric fields, not a union",
        )),
    }
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics,
            "`Metrics` cannot be derived for a generic struct: metric names and types are fixed \
             per trainable",
        ));
    }
    // Two fields whose handles would have the same name (`loss` and `Loss`).
    let mut consts: Vec<(String, &syn::Ident)> = Vec::new();
    for field in &model.fields {
        let upper = field.name.to_uppercase();
        if let Some((_, first)) = consts.iter().find(|(c, _)| *c == upper) {
            errors.push(syn::Error::new_spanned(
                &field.ident,
                format!(
                    "fields `{first}` and `{}` would both get the handle `{upper}`; rename one",
                    field.ident
                ),
            ));
        } else {
            consts.push((upper, &field.ident));
        }
    }
}

/// Fields named like a field the runner writes with every result. The struct is still
/// expanded (the names are valid Rust), so that this is the only error.
pub(crate) fn check_names(model: &MetricsStruct, errors: &mut Vec<syn::Error>) {
    for field in &model.fields {
        if AUTOMATIC.contains(&field.name.as_str()) {
            errors.push(syn::Error::new_spanned(
                &field.ident,
                format!(
                    "the runner already writes `{}` with every result (its automatic fields \
                     are `training_iteration`, `time_this_iter_s`, `time_total_s`, `timestamp`, \
                     `trial_id` and `done`); rename this metric, e.g. `my_{}`",
                    field.name, field.name
                ),
            ));
        }
    }
}
