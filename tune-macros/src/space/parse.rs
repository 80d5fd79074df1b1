//! Step 1: the macro's input as our own model (`Item`, `Field`, `Domain`), spans kept.
//!
//! The syntax (`struct`/`enum` items whose fields read `name: Type = domain`) is parsed with
//! `syn`; then `from_syn` classifies each field's domain expression. Syntax errors stop the
//! macro (as in any Rust item); errors in a domain expression are recorded in the `Ctxt`
//! and the field keeps `DomainKind::Invalid`, so the other fields are still checked.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprClosure, Generics, Ident, Lit, Token, Type, UnOp, Visibility};

use crate::ctxt::suggest;

/// Everything between the braces of `search_space! { ... }`.
pub(crate) struct Input {
    /// `crate = path;` at the start: where generated code finds the runtime.
    pub(crate) krate: Option<syn::Path>,
    pub(crate) items: Vec<Item>,
}

/// One `struct` or `enum` of the invocation.
pub(crate) struct Item {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    /// Present when the user wrote generic parameters or a where clause (not supported).
    pub(crate) generics: Option<Generics>,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    Struct(Shape),
    Enum(Vec<Variant>),
}

/// The fields of a struct or an enum variant.
pub(crate) enum Shape {
    Named(Vec<Field>),
    /// `Variant` or `struct Name;`.
    Unit,
    /// `Name(..)`: not supported, kept for the error's span.
    Tuple(TokenStream),
}

pub(crate) struct Variant {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) ident: Ident,
    pub(crate) shape: Shape,
    /// `Variant = 3`: not supported, kept for the error's span.
    pub(crate) discriminant: Option<Expr>,
}

pub(crate) struct Field {
    pub(crate) attrs: Vec<Attribute>,
    /// The visibility written on the field; the item's visibility when there is none.
    pub(crate) vis: Option<Visibility>,
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    pub(crate) domain: Domain,
}

pub(crate) struct Domain {
    /// The whole expression after `=` (the type for a nested space), for error spans.
    pub(crate) tokens: TokenStream,
    /// The domain's name as written (`uniform`), for spans and messages.
    pub(crate) name: Option<Ident>,
    pub(crate) kind: DomainKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloatKind {
    Uniform,
    QUniform,
    LogUniform,
    QLogUniform,
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // named after the domains
pub(crate) enum IntKind {
    RandInt,
    QRandInt,
    LogRandInt,
}

pub(crate) enum DomainKind {
    Float {
        kind: FloatKind,
        low: Num,
        high: Num,
        q: Option<Num>,
    },
    Normal {
        mean: Num,
        std: Num,
        q: Option<Num>,
    },
    Int {
        kind: IntKind,
        low: Num,
        high: Num,
        q: Option<Num>,
    },
    /// `choice([..])` (`grid == false`) or `grid([..])`.
    Choice {
        grid: bool,
        options: Vec<Expr>,
        brackets: TokenStream,
    },
    /// A literal, or `constant(expr)`.
    Constant(Expr),
    /// `sample_from(|c: &Self| ..)`.
    Derived(ExprClosure),
    /// No `= domain`: the field's type is itself a space.
    Nested,
    /// The expression is not a domain; `validate` reports the error.
    Invalid(syn::Error),
}

/// A numeric argument of a domain: the expression, and its value when it is a literal.
pub(crate) struct Num {
    pub(crate) expr: Expr,
    pub(crate) lit: Option<NumLit>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum NumLit {
    Int(i128),
    Float(f64),
}

impl NumLit {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            NumLit::Int(i) => i as f64,
            NumLit::Float(f) => f,
        }
    }
}

/// Every domain name, for "did you mean" suggestions.
pub(crate) const DOMAIN_NAMES: &[&str] = &[
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "randn",
    "qrandn",
    "randint",
    "qrandint",
    "lograndint",
    "choice",
    "grid",
    "constant",
    "sample_from",
];

// ---------------------------------------------------------------------------------------
// Syntax.

/// The syntax of the input, before domains are classified.
pub(crate) struct RawInput {
    krate: Option<syn::Path>,
    items: Vec<RawItem>,
}

struct RawItem {
    attrs: Vec<Attribute>,
    vis: Visibility,
    ident: Ident,
    generics: Option<Generics>,
    body: RawBody,
}

enum RawBody {
    Struct(RawShape),
    Enum(Vec<RawVariant>),
}

enum RawShape {
    Named(Vec<RawField>),
    Unit,
    Tuple(TokenStream),
}

struct RawVariant {
    attrs: Vec<Attribute>,
    ident: Ident,
    shape: RawShape,
    discriminant: Option<Expr>,
}

struct RawField {
    attrs: Vec<Attribute>,
    vis: Visibility,
    ident: Ident,
    ty: Type,
    domain: Option<Expr>,
}

impl Parse for RawInput {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut krate = None;
        if input.peek(Token![crate]) && input.peek2(Token![=]) {
            input.parse::<Token![crate]>()?;
            input.parse::<Token![=]>()?;
            krate = Some(input.call(syn::Path::parse_mod_style)?);
            input.parse::<Token![;]>()?;
        }
        let mut items = Vec::new();
        while !input.is_empty() {
            items.push(input.parse()?);
        }
        Ok(RawInput { krate, items })
    }
}

impl Parse for RawItem {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let lookahead = input.lookahead1();
        if lookahead.peek(Token![struct]) {
            input.parse::<Token![struct]>()?;
            let ident: Ident = input.parse()?;
            let generics = parse_generics(input)?;
            let shape = if input.peek(syn::token::Brace) {
                RawShape::Named(parse_fields(input)?)
            } else if input.peek(syn::token::Paren) {
                let group: proc_macro2::Group = input.parse()?;
                let tokens = group.to_token_stream();
                let _ = input.parse::<Option<Token![;]>>()?;
                RawShape::Tuple(tokens)
            } else {
                input.parse::<Token![;]>()?;
                RawShape::Unit
            };
            Ok(RawItem { attrs, vis, ident, generics, body: RawBody::Struct(shape) })
        } else if lookahead.peek(Token![enum]) {
            input.parse::<Token![enum]>()?;
            let ident: Ident = input.parse()?;
            let generics = parse_generics(input)?;
            let content;
            syn::braced!(content in input);
            let variants = Punctuated::<RawVariant, Token![,]>::parse_terminated(&content)?;
            Ok(RawItem {
                attrs,
                vis,
                ident,
                generics,
                body: RawBody::Enum(variants.into_iter().collect()),
            })
        } else {
            Err(syn::Error::new(
                lookahead.error().span(),
                "expected `struct` or `enum`: `search_space!` declares config structs and enum \
                 spaces",
            ))
        }
    }
}

/// Generic parameters and a where clause, kept only to report them.
fn parse_generics(input: ParseStream) -> syn::Result<Option<Generics>> {
    let mut generics: Generics = input.parse()?;
    if input.peek(Token![where]) {
        generics.where_clause = Some(input.parse()?);
    }
    let present = generics.lt_token.is_some() || generics.where_clause.is_some();
    Ok(present.then_some(generics))
}

fn parse_fields(input: ParseStream) -> syn::Result<Vec<RawField>> {
    let content;
    syn::braced!(content in input);
    let fields = Punctuated::<RawField, Token![,]>::parse_terminated(&content)?;
    Ok(fields.into_iter().collect())
}

impl Parse for RawVariant {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let ident: Ident = input.parse()?;
        let shape = if input.peek(syn::token::Brace) {
            RawShape::Named(parse_fields(input)?)
        } else if input.peek(syn::token::Paren) {
            let group: proc_macro2::Group = input.parse()?;
            RawShape::Tuple(group.to_token_stream())
        } else {
            RawShape::Unit
        };
        let discriminant = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(RawVariant { attrs, ident, shape, discriminant })
    }
}

impl Parse for RawField {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let ident: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty: Type = input.parse()?;
        let domain = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(RawField { attrs, vis, ident, ty, domain })
    }
}

// ---------------------------------------------------------------------------------------
// Model.

/// Turns the syntax into the model. A malformed domain becomes `DomainKind::Invalid`
/// holding its error, which `validate` reports in order with the others.
pub(crate) fn from_syn(raw: RawInput) -> Input {
    let items = raw.items.into_iter().map(parse_item).collect();
    Input { krate: raw.krate, items }
}

fn parse_item(raw: RawItem) -> Item {
    let body = match raw.body {
        RawBody::Struct(shape) => Body::Struct(parse_shape(shape)),
        RawBody::Enum(variants) => Body::Enum(
            variants
                .into_iter()
                .map(|v| Variant {
                    attrs: v.attrs,
                    ident: v.ident,
                    shape: parse_shape(v.shape),
                    discriminant: v.discriminant,
                })
                .collect(),
        ),
    };
    Item { attrs: raw.attrs, vis: raw.vis, ident: raw.ident, generics: raw.generics, body }
}

fn parse_shape(raw: RawShape) -> Shape {
    match raw {
        RawShape::Named(fields) => Shape::Named(fields.into_iter().map(parse_field).collect()),
        RawShape::Unit => Shape::Unit,
        RawShape::Tuple(tokens) => Shape::Tuple(tokens),
    }
}

fn parse_field(raw: RawField) -> Field {
    let domain = match raw.domain {
        Some(expr) => parse_domain(expr),
        None => Domain { tokens: raw.ty.to_token_stream(), name: None, kind: DomainKind::Nested },
    };
    let vis = match raw.vis {
        Visibility::Inherited => None,
        vis => Some(vis),
    };
    Field { attrs: raw.attrs, vis, ident: raw.ident, ty: raw.ty, domain }
}

/// Classifies the expression after `=`.
fn parse_domain(expr: Expr) -> Domain {
    let tokens = expr.to_token_stream();
    if is_literal(&expr) {
        return Domain { tokens, name: None, kind: DomainKind::Constant(expr) };
    }
    let call = match expr {
        Expr::Call(call) => call,
        expr => {
            let error = syn::Error::new_spanned(
                &expr,
                "expected a domain such as `uniform(0.0, 1.0)` or `choice([1, 2])`, or a \
                 literal: write `constant(expr)` for a fixed value computed by an expression",
            );
            return Domain { tokens, name: None, kind: DomainKind::Invalid(error) };
        }
    };
    let name = match &*call.func {
        Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
            p.path.get_ident().cloned()
        }
        _ => None,
    };
    let Some(name) = name else {
        let error = syn::Error::new_spanned(
            &call.func,
            "expected a domain name such as `uniform` or `choice`: domains are written without \
             a path",
        );
        return Domain { tokens, name: None, kind: DomainKind::Invalid(error) };
    };
    let kind = parse_domain_call(&name, call);
    Domain { tokens, name: Some(name), kind }
}

fn parse_domain_call(name: &Ident, call: syn::ExprCall) -> DomainKind {
    let n = name.to_string();
    let params: &[&str] = match n.as_str() {
        "uniform" | "loguniform" | "randint" | "lograndint" => &["low", "high"],
        "quniform" | "qloguniform" | "qrandint" => &["low", "high", "q"],
        "randn" => &["mean", "std"],
        "qrandn" => &["mean", "std", "q"],
        "choice" | "grid" => &["[options]"],
        "constant" => &["value"],
        "sample_from" => &["|config: &Self| value"],
        _ => {
            let hint = match n.as_str() {
                "grid_search" => Some("grid"),
                "sample" | "derived" | "sample_fn" => Some("sample_from"),
                "normal" | "gauss" => Some("randn"),
                "log_uniform" | "logunif" => Some("loguniform"),
                _ => suggest(&n, DOMAIN_NAMES),
            };
            let message = match hint {
                Some(s) => format!("unknown domain `{n}`: did you mean `{s}`?"),
                None => format!(
                    "unknown domain `{n}`: expected one of {}",
                    DOMAIN_NAMES.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", ")
                ),
            };
            return DomainKind::Invalid(syn::Error::new_spanned(name, message));
        }
    };
    let count = call.args.len();
    if count != params.len() {
        let plural = if params.len() == 1 { "" } else { "s" };
        let list = params.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ");
        let message = format!(
            "`{n}` takes {} argument{plural} ({list}), found {count}: write `{n}({})`",
            params.len(),
            params.join(", ")
        );
        return DomainKind::Invalid(if count == 0 {
            syn::Error::new(call.paren_token.span.join(), message)
        } else {
            syn::Error::new_spanned(&call.args, message)
        });
    }
    let mut args = call.args.into_iter();
    let mut num = || {
        let expr = args.next().unwrap_or(Expr::Verbatim(TokenStream::new()));
        let lit = num_lit(&expr);
        Num { expr, lit }
    };
    match n.as_str() {
        "uniform" | "loguniform" => {
            let kind = if n == "uniform" { FloatKind::Uniform } else { FloatKind::LogUniform };
            let (low, high) = (num(), num());
            DomainKind::Float { kind, low, high, q: None }
        }
        "quniform" | "qloguniform" => {
            let kind = if n == "quniform" { FloatKind::QUniform } else { FloatKind::QLogUniform };
            let (low, high, q) = (num(), num(), num());
            DomainKind::Float { kind, low, high, q: Some(q) }
        }
        "randn" | "qrandn" => {
            let (mean, std) = (num(), num());
            let q = (n == "qrandn").then(&mut num);
            DomainKind::Normal { mean, std, q }
        }
        "randint" | "lograndint" => {
            let kind = if n == "randint" { IntKind::RandInt } else { IntKind::LogRandInt };
            let (low, high) = (num(), num());
            DomainKind::Int { kind, low, high, q: None }
        }
        "qrandint" => {
            let (low, high, q) = (num(), num(), num());
            DomainKind::Int { kind: IntKind::QRandInt, low, high, q: Some(q) }
        }
        "choice" | "grid" => match num().expr {
            Expr::Array(array) => DomainKind::Choice {
                grid: n == "grid",
                brackets: array.to_token_stream(),
                options: array.elems.into_iter().collect(),
            },
            other => DomainKind::Invalid(syn::Error::new_spanned(
                other,
                format!("`{n}` takes its options in brackets: write `{n}([a, b, c])`"),
            )),
        },
        "constant" => DomainKind::Constant(num().expr),
        "sample_from" => match num().expr {
            Expr::Closure(closure) => DomainKind::Derived(closure),
            other => DomainKind::Invalid(syn::Error::new_spanned(
                other,
                "`sample_from` takes a closure over the config: write `sample_from(|c: &Self| \
                 ...)`",
            )),
        },
        _ => DomainKind::Invalid(syn::Error::new_spanned(name, "unknown domain")),
    }
}

/// A literal, possibly negated (`-1`).
pub(crate) fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Lit(_) => true,
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => matches!(&*u.expr, Expr::Lit(_)),
        Expr::Group(g) => is_literal(&g.expr),
        Expr::Paren(p) => is_literal(&p.expr),
        _ => false,
    }
}

/// The literal under optional parentheses and negation, with whether it is negated.
pub(crate) fn literal(expr: &Expr) -> Option<(bool, &Lit)> {
    match expr {
        Expr::Lit(l) => Some((false, &l.lit)),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => match literal(&u.expr) {
            Some((neg, lit)) => Some((!neg, lit)),
            None => None,
        },
        Expr::Group(g) => literal(&g.expr),
        Expr::Paren(p) => literal(&p.expr),
        _ => None,
    }
}

/// The value of a numeric literal.
pub(crate) fn num_lit(expr: &Expr) -> Option<NumLit> {
    let (neg, lit) = literal(expr)?;
    let value = match lit {
        Lit::Int(i) => NumLit::Int(i.base10_parse::<i128>().ok()?),
        Lit::Float(f) => NumLit::Float(f.base10_parse::<f64>().ok()?),
        _ => return None,
    };
    Some(match (neg, value) {
        (false, v) => v,
        (true, NumLit::Int(i)) => NumLit::Int(-i),
        (true, NumLit::Float(f)) => NumLit::Float(-f),
    })
}

/// How an expression reads in a message: `-1` rather than `- 1`.
pub(crate) fn render(expr: &Expr) -> String {
    match literal(expr) {
        Some((neg, lit)) => {
            let text = lit.to_token_stream().to_string();
            if neg { format!("-{text}") } else { text }
        }
        None => expr.to_token_stream().to_string(),
    }
}

impl Domain {
    /// The domain as written, for messages: `uniform(1.0, 0.5)`.
    pub(crate) fn render(&self) -> String {
        let name = self.name.as_ref().map(ToString::to_string).unwrap_or_default();
        match &self.kind {
            DomainKind::Float { low, high, q, .. } | DomainKind::Int { low, high, q, .. } => {
                render_call(&name, [Some(low), Some(high), q.as_ref()])
            }
            DomainKind::Normal { mean, std, q } => {
                render_call(&name, [Some(mean), Some(std), q.as_ref()])
            }
            DomainKind::Choice { options, .. } => {
                format!("{name}([{}])", options.iter().map(render).collect::<Vec<_>>().join(", "))
            }
            DomainKind::Constant(expr) => render(expr),
            DomainKind::Derived(_) => "sample_from(..)".to_owned(),
            DomainKind::Nested | DomainKind::Invalid(_) => self.tokens.to_string(),
        }
    }
}

fn render_call(name: &str, args: [Option<&Num>; 3]) -> String {
    let args: Vec<String> = args.iter().flatten().map(|n| render(&n.expr)).collect();
    format!("{name}({})", args.join(", "))
}
