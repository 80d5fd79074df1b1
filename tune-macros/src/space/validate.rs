//! Step 2: reads the model and reports every mistake it can see at compile time. It never
//! changes the model.

use std::collections::HashSet;

use syn::{Expr, Ident, Lit};

use super::parse::{
    Body, Domain, DomainKind, Field, FloatKind, Input, IntKind, Item, Num, NumLit, Shape, literal,
    render,
};
use super::types::{Prim, classify, render_type};
use crate::ctxt::Ctxt;

pub(crate) fn validate(input: &Input, cx: &mut Ctxt) {
    for item in &input.items {
        check_item(item, cx);
    }
}

fn check_item(item: &Item, cx: &mut Ctxt) {
    if let Some(generics) = &item.generics {
        cx.error_spanned(
            generics,
            format!(
                "search spaces cannot be generic: remove the generic parameters of `{}` and \
                 name concrete types in its fields",
                item.ident
            ),
        );
    }
    if item.generics.is_some() {
        // The fields of a generic item are not checked: the generics are the mistake.
        return;
    }
    match &item.body {
        Body::Struct(Shape::Named(fields)) => check_fields(fields, None, cx),
        Body::Struct(Shape::Unit) => cx.error_spanned(
            &item.ident,
            format!(
                "a search space struct needs braces: write `struct {} {{ field: Type = domain }}` \
                 (`{{}}` for an empty space)",
                item.ident
            ),
        ),
        Body::Struct(Shape::Tuple(tokens)) => cx.error_spanned(
            tokens,
            format!(
                "a search space struct needs named fields: write `struct {} {{ field: Type = \
                 domain }}`",
                item.ident
            ),
        ),
        Body::Enum(variants) => {
            if variants.is_empty() {
                cx.error_spanned(
                    &item.ident,
                    format!(
                        "enum space `{}` has no variants: declare at least one, e.g. `Plain` or \
                         `Sgd {{ lr: f64 = loguniform(1e-3, 1e-1) }}`",
                        item.ident
                    ),
                );
            }
            let mut seen = HashSet::new();
            for variant in variants {
                if !seen.insert(variant.ident.to_string()) {
                    cx.error_spanned(
                        &variant.ident,
                        format!(
                            "variant `{}` is declared twice: rename or remove one",
                            variant.ident
                        ),
                    );
                }
                if let Some(d) = &variant.discriminant {
                    cx.error_spanned(
                        d,
                        "enum space variants cannot have discriminants: remove `= ...`",
                    );
                }
                match &variant.shape {
                    Shape::Named(fields) => check_fields(fields, Some(&variant.ident), cx),
                    Shape::Unit => {}
                    Shape::Tuple(tokens) => cx.error_spanned(
                        tokens,
                        format!(
                            "enum space variants need named fields or none: write `{} {{ field: \
                             Type = domain }}`",
                            variant.ident
                        ),
                    ),
                }
            }
        }
    }
}

/// Checks the fields of a struct, or of the enum variant `variant`.
fn check_fields(fields: &[Field], variant: Option<&Ident>, cx: &mut Ctxt) {
    let mut seen = HashSet::new();
    for field in fields {
        let name = field.ident.to_string();
        if !seen.insert(name.clone()) {
            cx.error_spanned(
                &field.ident,
                format!("field `{name}` is declared twice: rename or remove one"),
            );
        }
        check_field(field, variant, cx);
    }
}

fn check_field(field: &Field, variant: Option<&Ident>, cx: &mut Ctxt) {
    let prim = classify(&field.ty);
    let ty = render_type(&field.ty);
    let domain = &field.domain;
    let dname = domain.name.as_ref().map(ToString::to_string).unwrap_or_default();
    match &domain.kind {
        DomainKind::Float { kind, low, high, q } => {
            if !prim.is_float() {
                let fix = match prim {
                    Prim::Int { .. } => {
                        "use `randint(low, high)` or `qrandint(low, high, q)` for integers, or \
                         make the field `f64`"
                    }
                    _ => "make the field `f64` or `f32`",
                };
                cx.error_spanned(
                    &domain.name,
                    format!(
                        "`{dname}` samples floats and cannot fill a field of type `{ty}`: {fix}"
                    ),
                );
            }
            let log = matches!(kind, FloatKind::LogUniform | FloatKind::QLogUniform);
            let (low_v, high_v) = (float_bound(low, &dname, cx), float_bound(high, &dname, cx));
            let q_v = q.as_ref().and_then(|q| float_bound(q, &dname, cx));
            check_range(domain, low, high, low_v, high_v, cx);
            if log {
                check_log_low(domain, low, low_v, cx);
            }
            if let Some(q) = q {
                check_quantum(domain, q, q_v, low_v, high_v, cx);
            }
        }
        DomainKind::Normal { mean, std, q } => {
            if !prim.is_float() {
                cx.error_spanned(
                    &domain.name,
                    format!(
                        "`{dname}` samples floats and cannot fill a field of type `{ty}`: make \
                         the field `f64` or `f32`"
                    ),
                );
            }
            float_bound(mean, &dname, cx);
            if let Some(s) = float_bound(std, &dname, cx) {
                if s <= 0.0 {
                    cx.error_spanned(
                        &std.expr,
                        format!(
                            "`std` must be positive in `{}`: a normal distribution needs a \
                             spread greater than 0",
                            domain.render()
                        ),
                    );
                }
            }
            if let Some(q) = q {
                let q_v = float_bound(q, &dname, cx);
                check_quantum(domain, q, q_v, None, None, cx);
            }
        }
        DomainKind::Int { kind, low, high, q } => {
            if !matches!(prim, Prim::Int { .. }) {
                let fix = if prim.is_float() {
                    "use `uniform(low, high)` or `quniform(low, high, q)` for floats, or make the \
                     field an integer type"
                } else {
                    "make the field an integer type such as `u32` or `i64`"
                };
                cx.error_spanned(
                    &domain.name,
                    format!(
                        "`{dname}` samples integers and cannot fill a field of type `{ty}`: {fix}"
                    ),
                );
            }
            let low_v = int_bound(low, &dname, cx);
            let high_v = int_bound(high, &dname, cx);
            let q_v = q.as_ref().and_then(|q| int_bound(q, &dname, cx));
            let as_f = |v: Option<i128>| v.map(|v| v as f64);
            check_range(domain, low, high, as_f(low_v), as_f(high_v), cx);
            if *kind == IntKind::LogRandInt {
                check_log_low(domain, low, as_f(low_v), cx);
            }
            if let Some(q) = q {
                check_int_quantum(domain, q, q_v, low_v, high_v, cx);
            }
            // `high` is exclusive except for `qrandint`.
            let high_exclusive = *kind != IntKind::QRandInt;
            if let Prim::Int { name, min, max } = prim {
                check_fits(low, low_v, min, max, name, false, cx);
                check_fits(high, high_v, min, max, name, high_exclusive, cx);
            }
        }
        DomainKind::Choice { grid, options, brackets } => {
            if *grid && variant.is_some() {
                cx.error_spanned(
                    &domain.name,
                    "`grid` is not supported inside an enum variant: use `choice([...])`; grid \
                     search enumerates the fields of structs only",
                );
            }
            if options.is_empty() {
                cx.error_spanned(
                    brackets,
                    format!(
                        "`{dname}` needs at least one option: write `{dname}([a, b])`, or a \
                         constant for a single value"
                    ),
                );
            }
            let mut seen = HashSet::new();
            for option in options {
                check_literal(option, prim, &ty, &field.ident, cx);
                if literal(option).is_some() && !seen.insert(render(option)) {
                    cx.error_spanned(
                        option,
                        format!(
                            "option `{}` appears twice in `{dname}`: remove one",
                            render(option)
                        ),
                    );
                }
            }
        }
        DomainKind::Constant(expr) => check_literal(expr, prim, &ty, &field.ident, cx),
        DomainKind::Derived(closure) => {
            if let Some(variant) = variant {
                cx.error_spanned(
                    &domain.name,
                    format!(
                        "`sample_from` is not supported inside enum variant `{variant}`: derive \
                         the value in the struct that holds the enum, or sample it with a domain"
                    ),
                );
            }
            if closure.inputs.len() != 1 {
                cx.error_spanned(
                    &closure.inputs,
                    format!(
                        "the closure of `sample_from` takes one argument, the config, found {}: \
                         write `sample_from(|c: &Self| ...)`",
                        closure.inputs.len()
                    ),
                );
            }
        }
        DomainKind::Nested => {
            if prim != Prim::Other {
                let example = match prim {
                    Prim::F32 | Prim::F64 => "uniform(0.0, 1.0)",
                    Prim::Int { .. } => "randint(0, 10)",
                    Prim::Bool => "choice([true, false])",
                    _ => "choice([\"a\", \"b\"])",
                };
                cx.error_spanned(
                    &field.ty,
                    format!(
                        "field `{}` of type `{ty}` needs a domain: write `{}: {ty} = {example}`, \
                         or a constant; only a search space type can be a field without one",
                        field.ident, field.ident
                    ),
                );
            }
        }
        DomainKind::Invalid(error) => cx.push(error.clone()),
    }
}

/// The value of a literal float-domain argument; an error when it is a non-numeric literal.
fn float_bound(num: &Num, dname: &str, cx: &mut Ctxt) -> Option<f64> {
    match num.lit {
        Some(v) => Some(v.as_f64()),
        None => {
            if literal(&num.expr).is_some() {
                cx.error_spanned(
                    &num.expr,
                    format!("`{dname}` takes numbers, found `{}`", render(&num.expr)),
                );
            }
            None
        }
    }
}

/// The value of a literal integer-domain argument; an error when it is a float or another
/// kind of literal.
fn int_bound(num: &Num, dname: &str, cx: &mut Ctxt) -> Option<i128> {
    match num.lit {
        Some(NumLit::Int(v)) => Some(v),
        Some(NumLit::Float(_)) => {
            cx.error_spanned(
                &num.expr,
                format!(
                    "`{dname}` takes integers, found `{}`: write an integer, or use a float \
                     domain such as `uniform` on a float field",
                    render(&num.expr)
                ),
            );
            None
        }
        None => {
            if literal(&num.expr).is_some() {
                cx.error_spanned(
                    &num.expr,
                    format!("`{dname}` takes integers, found `{}`", render(&num.expr)),
                );
            }
            None
        }
    }
}

fn check_range(
    domain: &Domain,
    low: &Num,
    high: &Num,
    low_v: Option<f64>,
    high_v: Option<f64>,
    cx: &mut Ctxt,
) {
    let (Some(l), Some(h)) = (low_v, high_v) else { return };
    if l < h {
        return;
    }
    let dname = domain.name.as_ref().map(ToString::to_string).unwrap_or_default();
    let fix = if l > h {
        let swapped = domain
            .render()
            .replacen(&render(&low.expr), "\u{0}", 1)
            .replacen(&render(&high.expr), &render(&low.expr), 1)
            .replacen('\u{0}', &render(&high.expr), 1);
        format!("swap them: `{swapped}`")
    } else {
        format!("for a fixed value write the literal instead of `{dname}(..)`")
    };
    let low_expr = &low.expr;
    let high_expr = &high.expr;
    cx.error_spanned(
        quote::quote!(#low_expr, #high_expr),
        format!("`low` must be less than `high` in `{}`: {fix}", domain.render()),
    );
}

fn check_log_low(domain: &Domain, low: &Num, low_v: Option<f64>, cx: &mut Ctxt) {
    if let Some(l) = low_v {
        if l <= 0.0 {
            let dname = domain.name.as_ref().map(ToString::to_string).unwrap_or_default();
            let alternative = if dname.contains("int") { "randint" } else { "uniform" };
            cx.error_spanned(
                &low.expr,
                format!(
                    "`low` must be positive in `{}`: a log-scale domain samples `ln(x)`; use a \
                     small positive bound, or `{alternative}` to include {}",
                    domain.render(),
                    render(&low.expr)
                ),
            );
        }
    }
}

fn check_quantum(
    domain: &Domain,
    q: &Num,
    q_v: Option<f64>,
    low_v: Option<f64>,
    high_v: Option<f64>,
    cx: &mut Ctxt,
) {
    let Some(qv) = q_v else { return };
    if qv <= 0.0 {
        cx.error_spanned(
            &q.expr,
            format!(
                "quantum `q` must be positive in `{}`: values are multiples of `q`",
                domain.render()
            ),
        );
        return;
    }
    if let (Some(l), Some(h)) = (low_v, high_v) {
        if l < h && (l / qv).ceil() > (h / qv).floor() {
            cx.error_spanned(
                &q.expr,
                format!(
                    "no multiple of `q` = {} lies in [{}, {}] in `{}`: use a smaller quantum",
                    render(&q.expr),
                    l,
                    h,
                    domain.render()
                ),
            );
        }
    }
}

fn check_int_quantum(
    domain: &Domain,
    q: &Num,
    q_v: Option<i128>,
    low_v: Option<i128>,
    high_v: Option<i128>,
    cx: &mut Ctxt,
) {
    let Some(qv) = q_v else { return };
    if qv <= 0 {
        cx.error_spanned(
            &q.expr,
            format!(
                "quantum `q` must be positive in `{}`: values are multiples of `q`",
                domain.render()
            ),
        );
        return;
    }
    if let (Some(l), Some(h)) = (low_v, high_v) {
        let first = -((-l).div_euclid(qv));
        let last = h.div_euclid(qv);
        if l < h && first > last {
            cx.error_spanned(
                &q.expr,
                format!(
                    "no multiple of `q` = {qv} lies in [{l}, {h}] in `{}`: use a smaller quantum",
                    domain.render()
                ),
            );
        }
    }
}

/// Checks that an integer bound fits the field's type (and the `i64` the samplers use).
/// An exclusive `high` may be one past the type's maximum.
fn check_fits(
    num: &Num,
    value: Option<i128>,
    min: i128,
    max: i128,
    ty: &str,
    exclusive: bool,
    cx: &mut Ctxt,
) {
    let Some(v) = value else { return };
    let top = if exclusive { max.saturating_add(1) } else { max };
    if v < min || v > top {
        cx.error_spanned(
            &num.expr,
            format!(
                "`{v}` does not fit in `{ty}`, the field's type: use a bound in {min}..={top}, \
                 or a wider integer type"
            ),
        );
    } else if v < i128::from(i64::MIN) || v > i128::from(i64::MAX) {
        cx.error_spanned(
            &num.expr,
            format!("`{v}` does not fit in `i64`, through which integer domains are sampled"),
        );
    }
}

/// Checks a literal value (a constant or an option) against a primitive field type.
fn check_literal(expr: &Expr, prim: Prim, ty: &str, field: &Ident, cx: &mut Ctxt) {
    let Some((neg, lit)) = literal(expr) else { return };
    if prim == Prim::Other {
        return;
    }
    let text = render(expr);
    let found = match lit {
        Lit::Int(i) => {
            if let Prim::Int { name, min, max } = prim {
                let suffix = i.suffix();
                if !suffix.is_empty() && suffix != name {
                    cx.error_spanned(
                        expr,
                        format!(
                            "`{text}` is a `{suffix}` literal, but field `{field}` has type `{ty}`: \
                             remove the suffix"
                        ),
                    );
                    return;
                }
                if let Ok(v) = i.base10_parse::<i128>() {
                    let v = if neg { -v } else { v };
                    if v < min || v > max {
                        cx.error_spanned(
                            expr,
                            format!(
                                "`{text}` does not fit in `{ty}`, the type of field `{field}`: \
                                 use a value in {min}..={max}"
                            ),
                        );
                    }
                }
                return;
            }
            if prim.is_float() {
                cx.error_spanned(
                    expr,
                    format!(
                        "`{text}` is an integer literal, but field `{field}` has type `{ty}`: \
                         write `{text}.0`"
                    ),
                );
                return;
            }
            "an integer literal"
        }
        Lit::Float(_) => {
            if prim.is_float() {
                return;
            }
            "a float literal"
        }
        Lit::Str(_) => {
            if matches!(prim, Prim::String | Prim::Str) {
                return;
            }
            "a string literal"
        }
        Lit::Bool(_) => {
            if prim == Prim::Bool {
                return;
            }
            "a `bool` literal"
        }
        Lit::Char(_) => {
            if prim == Prim::Char {
                return;
            }
            "a `char` literal"
        }
        _ => return,
    };
    let example = match prim {
        Prim::F32 | Prim::F64 => "`0.5`",
        Prim::Int { .. } => "`1`",
        Prim::Bool => "`true`",
        Prim::Char => "`'a'`",
        Prim::String | Prim::Str => "`\"a\"`",
        Prim::Other => "a value of the field's type",
    };
    cx.error_spanned(
        expr,
        format!(
            "`{text}` is {found}, but field `{field}` has type `{ty}`: write a `{ty}` value such \
             as {example}"
        ),
    );
}
