//! From syn nodes to the model of a trainable, keeping the spans for error messages.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Token, Type};

/// The arguments of `#[trainable(...)]`.
#[derive(Default)]
pub(crate) struct Args {
    /// `config = Type` (class API only).
    pub config: Option<(Ident, Type)>,
    /// `metrics = Type` (class API only).
    pub metrics: Option<(Ident, Type)>,
    /// `resources(...)`, in the order written.
    pub resources: Vec<Resource>,
    /// `test = bool`.
    pub test: Option<(Ident, bool)>,
    /// `test_steps = N`.
    pub test_steps: Option<(Ident, syn::LitInt)>,
    /// `crate = path`.
    pub krate: Option<syn::Path>,
    /// `name = Ident` (function API only).
    pub name: Option<(Ident, Ident)>,
    /// `data = Type`: the data shared by every trial.
    pub data: Option<(Ident, Type)>,
    /// `test_config = path`: a function giving the generated test's config.
    pub test_config: Option<(Ident, syn::Path)>,
    /// `test_data = path`: a function giving the generated test's shared data.
    pub test_data: Option<(Ident, syn::Path)>,
    /// Options that are not known, for `validate` to report with a suggestion.
    pub unknown: Vec<Ident>,
    /// Options given twice: the second key.
    pub duplicates: Vec<Ident>,
}

/// One entry of `resources(...)`.
pub(crate) struct Resource {
    pub key: ResourceKey,
    pub amount: Amount,
}

pub(crate) enum ResourceKey {
    /// `cpu`, `gpu`, `extra_cpu`, `extra_gpu`, or an unknown key.
    Named(Ident),
    /// `custom("name" = amount)`.
    Custom(LitStr),
}

pub(crate) enum Amount {
    /// A numeric literal, possibly negated; `value` carries the sign.
    Literal { value: f64, expr: Expr },
    /// A closure or a function path, evaluated with the config at run time.
    Computed(Expr),
}

/// The item under the attribute.
// Built once per expansion: the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Model {
    Class(Class),
    Function(Function),
}

/// A struct: the class API.
pub(crate) struct Class {
    /// The struct, with the `#[checkpoint]` attributes removed.
    pub item: syn::ItemStruct,
    pub fields: Vec<StateField>,
}

/// A field of a class trainable.
pub(crate) struct StateField {
    pub member: syn::Member,
    pub ty: Type,
    /// `#[checkpoint(skip)]`: not saved, rebuilt by `setup`.
    pub skip: bool,
    /// `#[checkpoint(binary)]`: saved as a tensor in `state.safetensors`.
    pub binary: bool,
}

/// A function: the function API.
pub(crate) struct Function {
    pub item: syn::ItemFn,
    /// `C` of the `&C` parameter, when the signature has that shape.
    pub config: Option<Type>,
    /// `M` of the `&mut Session<M>` parameter, when the signature has that shape.
    pub metrics: Option<Type>,
    /// Whether the signature has no error: the function coerces to a `TrainFn`.
    pub signature_ok: bool,
}

/// Parses the attribute's arguments. Every mistake is pushed to `errors` and parsing goes
/// on with the next option, so that all of them are reported at once.
pub(crate) fn parse_args(tokens: TokenStream, errors: &mut Vec<syn::Error>) -> Args {
    let mut args = Args::default();
    let parser = |input: ParseStream| -> syn::Result<()> {
        while !input.is_empty() {
            if let Err(e) = parse_option(input, &mut args, errors) {
                errors.push(e);
                skip_to_comma(input)?;
            }
            if !input.is_empty() {
                if let Err(e) = input.parse::<Token![,]>() {
                    errors.push(e);
                    skip_to_comma(input)?;
                    if input.peek(Token![,]) {
                        input.parse::<Token![,]>()?;
                    }
                }
            }
        }
        Ok(())
    };
    if let Err(e) = parser.parse2(tokens) {
        errors.push(e);
    }
    args
}

fn skip_to_comma(input: ParseStream) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

fn parse_option(
    input: ParseStream,
    args: &mut Args,
    errors: &mut Vec<syn::Error>,
) -> syn::Result<()> {
    let key = input.call(Ident::parse_any).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected an option of `#[trainable]`, such as `config = MyConfig` or `resources(cpu = 1)`",
        )
    })?;
    let name = key.to_string();
    let seen = match name.as_str() {
        "config" => args.config.is_some(),
        "metrics" => args.metrics.is_some(),
        "resources" => !args.resources.is_empty(),
        "test" => args.test.is_some(),
        "test_steps" => args.test_steps.is_some(),
        "crate" => args.krate.is_some(),
        "name" => args.name.is_some(),
        "data" => args.data.is_some(),
        "test_config" => args.test_config.is_some(),
        "test_data" => args.test_data.is_some(),
        _ => false,
    };
    if seen {
        args.duplicates.push(key.clone());
    }
    match name.as_str() {
        "config" => {
            expect_eq(input, &key, "config = MyConfig")?;
            let ty = input.parse()?;
            args.config = Some((key, ty));
        }
        "metrics" => {
            expect_eq(input, &key, "metrics = MyMetrics")?;
            let ty = input.parse()?;
            args.metrics = Some((key, ty));
        }
        "data" => {
            expect_eq(input, &key, "data = MyDataSet")?;
            let ty = input.parse()?;
            args.data = Some((key, ty));
        }
        "test_config" | "test_data" => {
            let example = format!("{name} = small_{}", &name[5..]);
            expect_eq(input, &key, &example)?;
            let path: syn::Path = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!(
                        "expected the path of a function without parameters, e.g. `{example}` \
                         with `fn small_{}() -> ..`",
                        &name[5..]
                    ),
                )
            })?;
            if name == "test_config" {
                args.test_config = Some((key, path));
            } else {
                args.test_data = Some((key, path));
            }
        }
        "test" => {
            expect_eq(input, &key, "test = false")?;
            let lit: syn::LitBool = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected `true` or `false`: `test = false` turns the generated test off",
                )
            })?;
            args.test = Some((key, lit.value));
        }
        "test_steps" => {
            expect_eq(input, &key, "test_steps = 3")?;
            let lit: syn::LitInt = input.parse().map_err(|e| {
                syn::Error::new(e.span(), "expected a number of steps, e.g. `test_steps = 5`")
            })?;
            args.test_steps = Some((key, lit));
        }
        "crate" => {
            expect_eq(input, &key, "crate = ::tune_runtime")?;
            args.krate = Some(input.call(syn::Path::parse_mod_style)?);
        }
        "name" => {
            expect_eq(input, &key, "name = MyTrainable")?;
            let ident: Ident = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected the name of the generated struct, e.g. `name = TrainMnist`",
                )
            })?;
            args.name = Some((key, ident));
        }
        "resources" => {
            if !input.peek(syn::token::Paren) {
                return Err(syn::Error::new(
                    key.span(),
                    "expected `resources(...)`, e.g. `resources(cpu = 2, gpu = 0.5)`",
                ));
            }
            let content;
            syn::parenthesized!(content in input);
            parse_resources(&content, &mut args.resources, errors)?;
        }
        _ => {
            args.unknown.push(key);
            skip_to_comma(input)?;
        }
    }
    Ok(())
}

fn expect_eq(input: ParseStream, key: &Ident, example: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        Ok(())
    } else {
        Err(syn::Error::new(key.span(), format!("expected `{example}`")))
    }
}

/// Parses the entries of `resources(...)`; a bad entry is reported and skipped.
fn parse_resources(
    input: ParseStream,
    out: &mut Vec<Resource>,
    errors: &mut Vec<syn::Error>,
) -> syn::Result<()> {
    while !input.is_empty() {
        if let Err(e) = parse_resource(input, out, errors) {
            errors.push(e);
            skip_to_comma(input)?;
        }
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }
    Ok(())
}

fn parse_resource(
    input: ParseStream,
    out: &mut Vec<Resource>,
    errors: &mut Vec<syn::Error>,
) -> syn::Result<()> {
    let key = input.call(Ident::parse_any)?;
    if key != "custom" {
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(key.span(), format!("expected `{key} = amount`")));
        }
        input.parse::<Token![=]>()?;
        let amount = parse_amount(input)?;
        out.push(Resource { key: ResourceKey::Named(key), amount });
        return Ok(());
    }
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            key.span(),
            "expected `custom(\"name\" = amount)`, e.g. `custom(\"tpu\" = 1)`",
        ));
    }
    let content;
    syn::parenthesized!(content in input);
    while !content.is_empty() {
        let entry = (|| -> syn::Result<Resource> {
            let name: LitStr = content.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected a resource name in quotes: `custom(\"tpu\" = 1)`",
                )
            })?;
            content.parse::<Token![=]>()?;
            let amount = parse_amount(&content)?;
            Ok(Resource { key: ResourceKey::Custom(name), amount })
        })();
        match entry {
            Ok(resource) => out.push(resource),
            Err(e) => {
                errors.push(e);
                skip_to_comma(&content)?;
            }
        }
        if !content.is_empty() {
            content.parse::<Token![,]>()?;
        }
    }
    Ok(())
}

fn parse_amount(input: ParseStream) -> syn::Result<Amount> {
    let expr: Expr = input.parse()?;
    let literal = |lit: &syn::Lit| match lit {
        syn::Lit::Int(i) => i.base10_parse::<f64>().ok(),
        syn::Lit::Float(f) => f.base10_parse::<f64>().ok(),
        _ => None,
    };
    let value = match &expr {
        Expr::Lit(lit) => literal(&lit.lit),
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr: inner, .. }) => match &**inner {
            Expr::Lit(lit) => literal(&lit.lit).map(|v| -v),
            _ => None,
        },
        Expr::Closure(_) | Expr::Path(_) => return Ok(Amount::Computed(expr)),
        _ => None,
    };
    match value {
        Some(value) => Ok(Amount::Literal { value, expr }),
        None => Err(syn::Error::new_spanned(
            &expr,
            "expected a number (`cpu = 2`, `gpu = 0.5`) or a closure computing it from the config \
             (`cpu = |c: &MyConfig| c.workers as f64`)",
        )),
    }
}

/// Reads the item: a struct or a function; anything else is reported and gives `None`.
pub(crate) fn parse_item(item: syn::Item, errors: &mut Vec<syn::Error>) -> Option<Model> {
    match item {
        syn::Item::Struct(item) => Some(Model::Class(parse_class(item, errors))),
        syn::Item::Fn(item) => Some(Model::Function(parse_function(item, errors))),
        other => {
            let (span, what) = match &other {
                syn::Item::Enum(e) => (e.enum_token.span, "an enum"),
                syn::Item::Union(u) => (u.union_token.span, "a union"),
                syn::Item::Impl(i) => (i.impl_token.span, "an impl block"),
                syn::Item::Trait(t) => (t.trait_token.span, "a trait"),
                _ => (other.span(), "this item"),
            };
            errors.push(syn::Error::new(
                span,
                format!(
                    "`#[trainable]` goes on a struct (the class API) or a function (the function \
                     API), not on {what}; wrap the state in a struct: `struct MyTrainable {{ .. }}`"
                ),
            ));
            None
        }
    }
}

fn parse_class(mut item: syn::ItemStruct, errors: &mut Vec<syn::Error>) -> Class {
    let mut fields = Vec::new();
    for (index, field) in item.fields.iter_mut().enumerate() {
        let (mut skip, mut binary) = (false, false);
        let mut kept = Vec::with_capacity(field.attrs.len());
        for attr in std::mem::take(&mut field.attrs) {
            if attr.path().is_ident("checkpoint") {
                match parse_checkpoint_attr(&attr) {
                    Ok((s, b)) => {
                        if (s || skip) && (b || binary) {
                            errors.push(syn::Error::new_spanned(
                                &attr,
                                "a field is either skipped or checkpointed in binary: \
                                 `#[checkpoint(skip)]` and `#[checkpoint(binary)]` exclude \
                                 each other",
                            ));
                        }
                        skip |= s;
                        binary |= b;
                    }
                    Err(e) => errors.push(e),
                }
            } else {
                kept.push(attr);
            }
        }
        field.attrs = kept;
        let member = match &field.ident {
            Some(ident) => syn::Member::Named(ident.clone()),
            None => syn::Member::Unnamed(syn::Index { index: index as u32, span: field.ty.span() }),
        };
        fields.push(StateField { member, ty: field.ty.clone(), skip, binary });
    }
    Class { item, fields }
}

/// `#[checkpoint(skip)]` or `#[checkpoint(binary)]`: (skip, binary).
fn parse_checkpoint_attr(attr: &syn::Attribute) -> syn::Result<(bool, bool)> {
    let (mut skip, mut binary) = (false, false);
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("skip") {
            skip = true;
            Ok(())
        } else if meta.path.is_ident("binary") {
            binary = true;
            Ok(())
        } else {
            Err(meta.error(format!(
                "unknown checkpoint option `{}`; expected `#[checkpoint(skip)]` (not saved) or \
                 `#[checkpoint(binary)]` (saved as a tensor in `state.safetensors`)",
                meta.path.to_token_stream()
            )))
        }
    })
    .map_err(|e| {
        if matches!(attr.meta, syn::Meta::Path(_)) {
            syn::Error::new_spanned(
                attr,
                "expected `#[checkpoint(skip)]` or `#[checkpoint(binary)]`",
            )
        } else {
            e
        }
    })?;
    if skip && binary {
        return Err(syn::Error::new_spanned(
            attr,
            "a field is either skipped or checkpointed in binary: `#[checkpoint(skip)]` and \
             `#[checkpoint(binary)]` exclude each other",
        ));
    }
    Ok((skip, binary))
}

fn parse_function(item: syn::ItemFn, errors: &mut Vec<syn::Error>) -> Function {
    let errors_before = errors.len();
    let sig = &item.sig;
    let shape = "a function trainable has the signature \
                 `fn(config: &Config, session: &mut Session<Metrics>) -> TrainResult<()>`";
    if let Some(token) = &sig.asyncness {
        errors.push(syn::Error::new(
            token.span,
            "function trainables cannot be `async`: the function runs on a thread of its own and \
             `session.report(..)` blocks it between steps",
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new(token.span, "function trainables cannot be `unsafe`"));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "function trainables cannot be generic: name the config and metrics types in the \
             signature",
        ));
    }
    if let syn::ReturnType::Default = sig.output {
        errors.push(syn::Error::new(
            sig.paren_token.span.close(),
            "a function trainable must return `TrainResult<()>`: add `-> TrainResult<()>` and \
             end with `Ok(())`",
        ));
    }
    let inputs: Vec<&syn::FnArg> = sig.inputs.iter().collect();
    let (mut config, mut metrics) = (None, None);
    if inputs.len() != 2 {
        let span = if inputs.is_empty() { sig.paren_token.span.join() } else { sig.inputs.span() };
        errors.push(syn::Error::new(
            span,
            format!(
                "{shape}; this one takes {} parameter{}",
                inputs.len(),
                if inputs.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    if let Some(first) = inputs.first() {
        match first {
            syn::FnArg::Receiver(r) => errors.push(syn::Error::new_spanned(
                r,
                format!("{shape}; it cannot take `self`, write a free function"),
            )),
            syn::FnArg::Typed(pat) => match &*pat.ty {
                Type::Reference(r) if r.mutability.is_none() => config = Some((*r.elem).clone()),
                Type::Reference(r) => errors.push(syn::Error::new_spanned(
                    r,
                    "the config is read-only: take it as `&Config`, not `&mut Config`",
                )),
                other => errors.push(syn::Error::new_spanned(
                    other,
                    format!(
                        "the config is passed by reference: write `&{}`",
                        other.to_token_stream()
                    ),
                )),
            },
        }
    }
    if let Some(syn::FnArg::Typed(pat)) = inputs.get(1) {
        match session_metrics(&pat.ty) {
            Ok(m) => metrics = Some(m),
            Err(message) => errors.push(syn::Error::new_spanned(&pat.ty, message)),
        }
    }
    let signature_ok = errors.len() == errors_before;
    Function { item, config, metrics, signature_ok }
}

/// `M` of `&mut Session<M>`, or what is wrong with the type.
fn session_metrics(ty: &Type) -> Result<Type, String> {
    let expected = "the second parameter must be `&mut Session<Metrics>`, where `Metrics` derives \
                    `Metrics`";
    let Type::Reference(r) = ty else {
        return Err(format!("{expected}; take the session by `&mut` reference"));
    };
    if r.mutability.is_none() {
        return Err(format!("{expected}; reporting needs `&mut`: write `&mut Session<..>`"));
    }
    let Type::Path(path) = &*r.elem else {
        return Err(expected.to_owned());
    };
    let Some(last) = path.path.segments.last() else {
        return Err(expected.to_owned());
    };
    if last.ident != "Session" {
        return Err(expected.to_owned());
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(a) if a.args.len() == 1 => match a.args.first() {
            Some(syn::GenericArgument::Type(m)) => Ok(m.clone()),
            _ => Err(expected.to_owned()),
        },
        _ => Err(format!("{expected}; name the metrics type: `Session<MyMetrics>`")),
    }
}
