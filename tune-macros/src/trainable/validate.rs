//! Checks of the model: reads it and reports every mistake, each on its own token.

use proc_macro2::Span;
use quote::ToTokens;

use super::parse::{Amount, Args, Model, ResourceKey};

const OPTIONS: &[&str] = &[
    "config",
    "metrics",
    "resources",
    "data",
    "test",
    "test_steps",
    "test_config",
    "test_data",
    "crate",
    "name",
];
const RESOURCE_KEYS: &[&str] = &["cpu", "gpu", "extra_cpu", "extra_gpu", "custom"];
/// Above these a literal is a mistake (a percentage, milli-units), not a real machine.
const MAX_CPUS: f64 = 4096.0;
const MAX_GPUS: f64 = 1024.0;

pub(crate) fn validate(args: &Args, model: &Model, errors: &mut Vec<syn::Error>) {
    check_resources(args, errors);
    check_options(args, errors);
    match model {
        Model::Class(class) => {
            if !class.item.generics.params.is_empty() || class.item.generics.where_clause.is_some()
            {
                errors.push(syn::Error::new_spanned(
                    &class.item.generics,
                    "`#[trainable]` does not support generic structs: the runner builds \
                     trainables from a config alone; make the struct concrete (a type alias \
                     of a generic struct cannot be annotated either)",
                ));
            }
            let call_site = Span::call_site();
            if args.config.is_none() {
                errors.push(syn::Error::new(
                    call_site,
                    "missing `config = ..`: name the config type of this trainable, e.g. \
                     `#[trainable(config = MyConfig, metrics = MyMetrics)]`",
                ));
            }
            if args.metrics.is_none() {
                errors.push(syn::Error::new(
                    call_site,
                    "missing `metrics = ..`: name the metrics type of this trainable, e.g. \
                     `#[trainable(config = MyConfig, metrics = MyMetrics)]`",
                ));
            }
            if let Some((key, _)) = &args.name {
                errors.push(syn::Error::new(
                    key.span(),
                    "`name` only applies to a function trainable (it names the generated \
                     struct); a struct trainable is named after the struct",
                ));
            }
        }
        Model::Function(_) => {
            for (key, what) in [(&args.config, "config"), (&args.metrics, "metrics")] {
                if let Some((key, _)) = key {
                    let from = if what == "config" { "&Config" } else { "&mut Session<Metrics>" };
                    errors.push(syn::Error::new(
                        key.span(),
                        format!(
                            "`{what}` of a function trainable is read from its signature \
                             (the `{from}` parameter); remove `{what} = ..`"
                        ),
                    ));
                }
            }
        }
    }
}

fn check_options(args: &Args, errors: &mut Vec<syn::Error>) {
    for key in &args.unknown {
        let name = key.to_string();
        let message = match suggest(&name, OPTIONS) {
            Some(s) => format!("unknown option `{name}` of `#[trainable]`; did you mean `{s}`?"),
            None => format!(
                "unknown option `{name}` of `#[trainable]`; expected one of `config`, `metrics`, \
                 `resources(..)`, `data`, `test`, `test_steps`, `test_config`, `test_data`, \
                 `crate`, `name`"
            ),
        };
        errors.push(syn::Error::new(key.span(), message));
    }
    if matches!(args.test, Some((_, false))) {
        for (key, _) in [args.test_config.as_ref(), args.test_data.as_ref()].into_iter().flatten() {
            errors.push(syn::Error::new(
                key.span(),
                format!("`{key}` configures the generated test, which `test = false` turns off; remove one of them"),
            ));
        }
    }
    for key in &args.duplicates {
        errors.push(syn::Error::new(key.span(), format!("duplicate option `{key}`; give it once")));
    }
    if let Some((_, lit)) = &args.test_steps {
        match lit.base10_parse::<usize>() {
            Ok(0) => errors.push(syn::Error::new(
                lit.span(),
                "`test_steps` must be at least 1: the check steps the trainable this many \
                 times before the save and after the restore",
            )),
            Ok(_) => {}
            Err(e) => errors.push(syn::Error::new(lit.span(), e.to_string())),
        }
    }
}

fn check_resources(args: &Args, errors: &mut Vec<syn::Error>) {
    let mut seen: Vec<String> = Vec::new();
    for resource in &args.resources {
        let (name, span, limit) = match &resource.key {
            ResourceKey::Named(key) => {
                let name = key.to_string();
                let limit = match name.as_str() {
                    "cpu" | "extra_cpu" => Some((MAX_CPUS, "CPUs")),
                    "gpu" | "extra_gpu" => Some((MAX_GPUS, "GPUs")),
                    _ => {
                        let message = match suggest(&name, RESOURCE_KEYS) {
                            Some(s) => format!("unknown resource `{name}`; did you mean `{s}`?"),
                            None => format!(
                                "unknown resource `{name}`; expected `cpu`, `gpu`, `extra_cpu`, \
                                 `extra_gpu`, or a named resource: `custom(\"{name}\" = 1)`"
                            ),
                        };
                        errors.push(syn::Error::new(key.span(), message));
                        continue;
                    }
                };
                (name, key.span(), limit)
            }
            ResourceKey::Custom(lit) => {
                let name = lit.value();
                if name.is_empty() {
                    errors.push(syn::Error::new(lit.span(), "a custom resource needs a name"));
                    continue;
                }
                if RESOURCE_KEYS[..4].contains(&name.as_str()) {
                    errors.push(syn::Error::new(
                        lit.span(),
                        format!("`{name}` is a built-in resource: write `{name} = ..` instead of `custom(\"{name}\" = ..)`"),
                    ));
                    continue;
                }
                (name, lit.span(), None)
            }
        };
        if seen.contains(&name) {
            errors.push(syn::Error::new(
                span,
                format!("duplicate resource `{name}`; give each resource once"),
            ));
            continue;
        }
        seen.push(name.clone());
        if let Amount::Literal { value, expr } = &resource.amount {
            let written = expr.to_token_stream().to_string().replace("- ", "-");
            if !value.is_finite() {
                errors.push(syn::Error::new_spanned(
                    expr,
                    format!("`{name} = {written}` is not a finite number"),
                ));
            } else if *value < 0.0 {
                errors.push(syn::Error::new_spanned(
                    expr,
                    format!(
                        "resource amounts cannot be negative: `{name} = {written}`; use `0` to \
                         ask for none"
                    ),
                ));
            } else if let Some((max, unit)) = limit {
                if *value > max {
                    errors.push(syn::Error::new_spanned(
                        expr,
                        format!(
                            "`{name} = {written}` asks for more {unit} than a machine has (at \
                             most {max} per trial); amounts are counts of whole devices, \
                             fractions allowed (`0.5`), not percentages or milli-units"
                        ),
                    ));
                }
            }
        }
    }
}

/// The candidate closest to `name`, when it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let name = name.to_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&name, c), *c))
        .filter(|(d, c)| {
            *d <= (c.len().max(name.len()) / 3).max(1)
                || c.starts_with(name.as_str()) && name.len() >= 2
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("cpus", &["cpu", "gpu", "extra_cpu"]), Some("cpu"));
        assert_eq!(suggest("extra_gpus", &["cpu", "gpu", "extra_gpu"]), Some("extra_gpu"));
        assert_eq!(suggest("memory", &["cpu", "gpu", "extra_cpu"]), None);
        assert_eq!(suggest("confg", &["config", "metrics"]), Some("config"));
    }
}
