//! Step 3: generates the config types and their `Space` impls from a validated model. It
//! never reports user errors; `validate` has run and found none (or `expand_dummy` is used).
//!
//! Generated code names only `::core::...` and `<runtime>::__private::...`; its own
//! identifiers start with `__tune_`; helpers live in a `const _: () = { ... };` block.

use proc_macro2::{Literal, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Lit, Type};

use super::parse::{
    Body, DomainKind, Field, FloatKind, Input, IntKind, Item, Num, NumLit, Shape, literal, render,
};
use super::types::{Prim, classify};

/// Generates every item of a valid invocation.
pub(crate) fn expand(input: &Input, rt: &TokenStream) -> TokenStream {
    input.items.iter().map(|item| expand_item(item, rt)).collect()
}

/// What is generated next to the errors of an invalid invocation: the types as declared and
/// `Space` impls that are never run, so the user's other code still type-checks and the
/// errors of the invocation are the only ones.
pub(crate) fn expand_dummy(input: &Input, rt: &TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    for item in input.items.iter().filter(|item| item.generics.is_none()) {
        out.extend(expand_decl(item, rt, true));
        let ident = &item.ident;
        out.extend(quote! {
            const _: () = {
                #[automatically_derived]
                impl #rt::__private::Space for #ident {
                    fn grid_size() -> ::core::primitive::usize { ::core::unimplemented!() }
                    fn sample_at<__TuneR: #rt::__private::Rng + ?::core::marker::Sized>(
                        _: &mut __TuneR,
                        _: ::core::primitive::usize,
                    ) -> Self {
                        ::core::unimplemented!()
                    }
                    fn num_dims() -> ::core::primitive::usize { ::core::unimplemented!() }
                    fn describe(
                        _: &mut #rt::__private::Vec<#rt::__private::Dim>,
                        _: &::core::primitive::str,
                        _: ::core::option::Option<#rt::__private::Condition>,
                    ) {
                        ::core::unimplemented!()
                    }
                    fn encode_into(&self, _: &mut [::core::primitive::f64]) {
                        ::core::unimplemented!()
                    }
                    fn decode_from(
                        _: &[::core::primitive::f64],
                    ) -> ::core::result::Result<Self, #rt::__private::SpaceError> {
                        ::core::unimplemented!()
                    }
                    fn check_domains(
                        &self,
                        _: &::core::primitive::str,
                        _: &mut #rt::__private::Vec<#rt::__private::DomainViolation>,
                    ) {
                        ::core::unimplemented!()
                    }
                }
            };
        });
    }
    out
}

fn expand_item(item: &Item, rt: &TokenStream) -> TokenStream {
    match &item.body {
        Body::Struct(Shape::Named(fields)) => {
            let has_derived =
                fields.iter().any(|f| matches!(f.domain.kind, DomainKind::Derived(_)));
            let decl = expand_decl(item, rt, !has_derived);
            let imp = expand_struct_impl(item, fields, rt);
            quote! { #decl #imp }
        }
        Body::Struct(_) => TokenStream::new(),
        Body::Enum(_) => {
            let decl = expand_decl(item, rt, true);
            let imp = expand_enum_impl(item, rt);
            quote! { #decl #imp }
        }
    }
}

/// The `serde(crate = "...")` path of the runtime's serde re-export.
fn serde_path(rt: &TokenStream) -> String {
    format!("{rt}::__private::serde")
}

/// The struct or enum itself, with its derives. `Deserialize` is derived unless the
/// struct has derived fields, whose hand-written impl lets them be omitted.
fn expand_decl(item: &Item, rt: &TokenStream, derive_deserialize: bool) -> TokenStream {
    let attrs = &item.attrs;
    let vis = &item.vis;
    let ident = &item.ident;
    let serde_crate = serde_path(rt);
    let deserialize = derive_deserialize.then(|| quote!(, #rt::__private::serde::Deserialize));
    // Our derive comes first: a user's `#[serde(...)]` must follow the derive that declares it.
    let header = quote! {
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::cmp::PartialEq,
            #rt::__private::serde::Serialize
            #deserialize
        )]
        #[serde(crate = #serde_crate, deny_unknown_fields)]
        // `Eq` is up to the user: most spaces hold floats.
        #[allow(clippy::derive_partial_eq_without_eq)]
        #(#attrs)*
    };
    match &item.body {
        Body::Struct(shape) => {
            let fields = match shape {
                Shape::Named(fields) => fields.as_slice(),
                _ => &[],
            };
            let fields = unique_fields(fields).map(|f| {
                let attrs = &f.attrs;
                let fvis = f.vis.as_ref().unwrap_or(vis);
                let fident = &f.ident;
                let ty = &f.ty;
                quote!(#(#attrs)* #fvis #fident: #ty)
            });
            quote! { #header #vis struct #ident { #(#fields,)* } }
        }
        Body::Enum(variants) => {
            let mut seen = std::collections::HashSet::new();
            let variants = variants.iter().filter(|v| seen.insert(v.ident.to_string())).map(|v| {
                let attrs = &v.attrs;
                let vident = &v.ident;
                match &v.shape {
                    Shape::Named(fields) => {
                        let fields = unique_fields(fields).map(|f| {
                            let attrs = &f.attrs;
                            let fident = &f.ident;
                            let ty = &f.ty;
                            quote!(#(#attrs)* #fident: #ty)
                        });
                        quote!(#(#attrs)* #vident { #(#fields,)* })
                    }
                    _ => quote!(#(#attrs)* #vident),
                }
            });
            quote! { #header #vis enum #ident { #(#variants,)* } }
        }
    }
}

/// The fields with a name not seen before: after a duplicate-field error the dummy item
/// keeps the first, so rustc does not report the duplicate again.
fn unique_fields(fields: &[Field]) -> impl Iterator<Item = &Field> {
    let mut seen = std::collections::HashSet::new();
    fields.iter().filter(move |f| seen.insert(f.ident.to_string()))
}

// ---------------------------------------------------------------------------------------
// Per-field code, shared by structs and enum variants.

/// Where a field's generated code runs.
struct Site<'a> {
    rt: &'a TokenStream,
    /// Its name relative to the space: `lr`, or `Sgd.lr` in an enum variant.
    rel_name: String,
    /// An expression of the field's value: `self.lr` or `(*__tune_f0)`.
    access: TokenStream,
    /// The function that returns option `i` of a `choice`/`grid`.
    option_fn: Ident,
    /// Whether the field is in an enum variant (nested spaces are then sampled whole).
    in_variant: bool,
}

fn f64_lit(v: f64) -> TokenStream {
    let lit = Literal::f64_suffixed(v.abs());
    if v.is_sign_negative() { quote!((-#lit)) } else { quote!(#lit) }
}

fn i64_lit(v: i128) -> TokenStream {
    let lit = Literal::i64_suffixed(v.unsigned_abs() as i64);
    if v < 0 { quote!((-#lit)) } else { quote!(#lit) }
}

/// A float argument: the literal's value as `f64`, or the user's expression (which must then
/// be an `f64`).
fn float_arg(num: &Num) -> TokenStream {
    match num.lit {
        Some(v) => f64_lit(v.as_f64()),
        None => {
            let e = &num.expr;
            quote_spanned!(e.span()=> { let __tune_arg: ::core::primitive::f64 = #e; __tune_arg })
        }
    }
}

/// An integer argument: the literal's value as `i64`, or the user's expression (which must
/// then be an `i64`).
fn int_arg(num: &Num) -> TokenStream {
    match num.lit {
        Some(NumLit::Int(v)) => i64_lit(v),
        _ => {
            let e = &num.expr;
            quote_spanned!(e.span()=> { let __tune_arg: ::core::primitive::i64 = #e; __tune_arg })
        }
    }
}

fn opt(v: Option<TokenStream>) -> TokenStream {
    match v {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

/// A value of the field's type from a literal or expression: a string literal becomes a
/// `String` when the field is one.
fn value(expr: &Expr, ty: &Type, rt: &TokenStream) -> TokenStream {
    if classify(ty) == Prim::String {
        if let Some((false, Lit::Str(_))) = literal(expr) {
            return quote!(<#rt::__private::String as ::core::convert::From<&::core::primitive::str>>::from(#expr));
        }
    }
    expr.to_token_stream()
}

/// The function returning option `i` of a `choice`/`grid` field.
fn option_fn(site: &Site<'_>, field: &Field, options: &[Expr]) -> TokenStream {
    let name = &site.option_fn;
    let ty = &field.ty;
    let values: Vec<TokenStream> = options.iter().map(|o| value(o, ty, site.rt)).collect();
    let body = match values.as_slice() {
        [only] => quote!(let _ = __tune_i; #only),
        [init @ .., last] => {
            let idx = (0..init.len()).map(Literal::usize_unsuffixed);
            quote!(match __tune_i { #(#idx => #init,)* _ => #last })
        }
        [] => quote!(::core::unreachable!()),
    };
    quote! {
        #[allow(non_snake_case)]
        #[inline]
        fn #name(__tune_i: ::core::primitive::usize) -> #ty { #body }
    }
}

/// The number of dimensions a field contributes.
fn field_dims(field: &Field, rt: &TokenStream) -> TokenStream {
    let ty = &field.ty;
    match &field.domain.kind {
        DomainKind::Float { .. }
        | DomainKind::Normal { .. }
        | DomainKind::Int { .. }
        | DomainKind::Choice { .. } => quote!(1usize),
        DomainKind::Nested => {
            quote_spanned!(ty.span()=> <#ty as #rt::__private::Space>::num_dims())
        }
        DomainKind::Constant(_) | DomainKind::Derived(_) | DomainKind::Invalid(_) => quote!(0usize),
    }
}

/// `(low, high, q, closed_high)` of a float domain as tokens.
fn float_params(
    kind: FloatKind,
    low: &Num,
    high: &Num,
    q: &Option<Num>,
) -> (TokenStream, TokenStream, Option<TokenStream>, bool) {
    let closed = matches!(kind, FloatKind::QUniform | FloatKind::QLogUniform);
    (float_arg(low), float_arg(high), q.as_ref().map(float_arg), closed)
}

/// The expression that samples the field. `digit` is the field's grid digit (grid fields
/// and nested spaces of a struct).
fn sample_expr(field: &Field, site: &Site<'_>, digit: Option<&Ident>) -> TokenStream {
    let rt = site.rt;
    let d = quote!(#rt::__private::domain);
    let ty = &field.ty;
    let prim = classify(ty);
    match &field.domain.kind {
        DomainKind::Float { kind, low, high, q } => {
            let (lo, hi, qq, closed) = float_params(*kind, low, high, q);
            let x = match kind {
                FloatKind::Uniform => quote!(#d::uniform(__tune_rng, #lo, #hi)),
                FloatKind::LogUniform => quote!(#d::loguniform(__tune_rng, #lo, #hi)),
                FloatKind::QUniform => quote!(#d::quniform(__tune_rng, #lo, #hi, #qq)),
                FloatKind::QLogUniform => quote!(#d::qloguniform(__tune_rng, #lo, #hi, #qq)),
            };
            narrow(x, prim, rt, &lo, &hi, closed)
        }
        DomainKind::Normal { mean, std, q } => {
            let (m, s) = (float_arg(mean), float_arg(std));
            let x = match q {
                Some(q) => {
                    let q = float_arg(q);
                    quote!(#d::qrandn(__tune_rng, #m, #s, #q))
                }
                None => quote!(#d::randn(__tune_rng, #m, #s)),
            };
            if prim == Prim::F32 { quote!((#x) as ::core::primitive::f32) } else { x }
        }
        DomainKind::Int { kind, low, high, q } => {
            let (lo, hi) = (int_arg(low), int_arg(high));
            let x = match kind {
                IntKind::RandInt => quote!(#d::randint(__tune_rng, #lo, #hi)),
                IntKind::LogRandInt => quote!(#d::lograndint(__tune_rng, #lo, #hi)),
                IntKind::QRandInt => {
                    let q = q.as_ref().map(int_arg);
                    quote!(#d::qrandint(__tune_rng, #lo, #hi, #q))
                }
            };
            quote!((#x) as #ty)
        }
        DomainKind::Choice { grid, options, .. } => {
            let f = &site.option_fn;
            if *grid {
                quote!(#f(#digit))
            } else {
                let n = options.len();
                quote!(#f(#d::choice(__tune_rng, #n)))
            }
        }
        DomainKind::Constant(expr) => value(expr, ty, rt),
        DomainKind::Derived(_) => placeholder(ty, rt),
        DomainKind::Nested => {
            if site.in_variant {
                quote_spanned!(ty.span()=> <#ty as #rt::__private::Space>::sample(__tune_rng))
            } else {
                quote_spanned!(ty.span()=> <#ty as #rt::__private::Space>::sample_at(__tune_rng, #digit))
            }
        }
        DomainKind::Invalid(_) => quote!(::core::unreachable!()),
    }
}

/// The placeholder of a derived field, spanned on its type so a missing `Default` points
/// there.
fn placeholder(ty: &Type, rt: &TokenStream) -> TokenStream {
    quote_spanned!(ty.span()=> #rt::__private::space::placeholder::<#ty>())
}

/// Turns an `f64` into the field's float type.
fn narrow(
    x: TokenStream,
    prim: Prim,
    rt: &TokenStream,
    lo: &TokenStream,
    hi: &TokenStream,
    closed: bool,
) -> TokenStream {
    if prim == Prim::F32 {
        quote!(#rt::__private::space::narrow_f32(#x, #lo, #hi, #closed))
    } else {
        x
    }
}

fn describe_stmt(field: &Field, site: &Site<'_>, condition: &TokenStream) -> TokenStream {
    let rt = site.rt;
    let s = quote!(#rt::__private::space);
    let kind_path = quote!(#rt::__private::DimKind);
    let name = &site.rel_name;
    let push =
        |kind: TokenStream| quote!(#s::push(__tune_dims, __tune_prefix, #name, #kind, #condition););
    match &field.domain.kind {
        DomainKind::Float { kind, low, high, q } => {
            let (lo, hi, qq, _) = float_params(*kind, low, high, q);
            let log = matches!(kind, FloatKind::LogUniform | FloatKind::QLogUniform);
            let qq = opt(qq);
            push(quote!(#kind_path::Float { low: #lo, high: #hi, log: #log, q: #qq }))
        }
        DomainKind::Normal { mean, std, q } => {
            let (m, sd) = (float_arg(mean), float_arg(std));
            let qq = opt(q.as_ref().map(float_arg));
            push(quote!(#kind_path::Normal { mean: #m, std: #sd, q: #qq }))
        }
        DomainKind::Int { kind, low, high, q } => {
            let (lo, hi) = (int_arg(low), int_arg(high));
            // The encoding's `high` is inclusive; `randint`/`lograndint` exclude theirs.
            let hi = if *kind == IntKind::QRandInt { hi } else { quote!((#hi - 1i64)) };
            let log = *kind == IntKind::LogRandInt;
            let qq = opt(q.as_ref().map(int_arg));
            push(quote!(#kind_path::Int { low: #lo, high: #hi, log: #log, q: #qq }))
        }
        DomainKind::Choice { options, .. } => {
            let rendered: Option<Vec<String>> = options.iter().map(render_option).collect();
            match rendered {
                Some(choices) => push(quote!(#s::categorical(&[#(#choices),*]))),
                None => {
                    let f = &site.option_fn;
                    let n = options.len();
                    push(quote!(#s::categorical_debug(#n, #f)))
                }
            }
        }
        DomainKind::Nested => {
            let ty = &field.ty;
            quote_spanned! {ty.span()=>
                <#ty as #rt::__private::Space>::describe(
                    __tune_dims,
                    &#s::join_prefix(__tune_prefix, #name),
                    #condition,
                );
            }
        }
        DomainKind::Constant(_) | DomainKind::Derived(_) | DomainKind::Invalid(_) => quote!(),
    }
}

/// How a literal option is listed in a categorical dimension: a string's text, a number as
/// written. `None` for an expression, which is rendered with `Debug` at run time.
fn render_option(expr: &Expr) -> Option<String> {
    match literal(expr)? {
        (false, Lit::Str(s)) => Some(s.value()),
        (_, Lit::Int(_) | Lit::Float(_) | Lit::Bool(_) | Lit::Char(_)) => Some(render(expr)),
        _ => None,
    }
}

fn encode_stmt(field: &Field, site: &Site<'_>) -> TokenStream {
    let rt = site.rt;
    let access = &site.access;
    let put = |x: TokenStream| {
        quote! { __tune_out[__tune_at] = #x; __tune_at += 1; }
    };
    match &field.domain.kind {
        DomainKind::Float { .. } | DomainKind::Normal { .. } | DomainKind::Int { .. } => {
            put(quote!((#access) as ::core::primitive::f64))
        }
        DomainKind::Choice { options, .. } => {
            let f = &site.option_fn;
            let n = options.len();
            put(quote!(#rt::__private::space::encode_index(&#access, #n, #f)))
        }
        DomainKind::Nested => {
            let ty = &field.ty;
            quote! {
                let __tune_n = <#ty as #rt::__private::Space>::num_dims();
                <#ty as #rt::__private::Space>::encode_into(
                    &#access,
                    &mut __tune_out[__tune_at..__tune_at + __tune_n],
                );
                __tune_at += __tune_n;
            }
        }
        DomainKind::Constant(_) | DomainKind::Derived(_) | DomainKind::Invalid(_) => quote!(),
    }
}

fn decode_expr(field: &Field, site: &Site<'_>) -> TokenStream {
    let rt = site.rt;
    let d = quote!(#rt::__private::domain);
    let s = quote!(#rt::__private::space);
    let name = &site.rel_name;
    let ty = &field.ty;
    let prim = classify(ty);
    let take = |convert: TokenStream| {
        quote!({
            let __tune_v = #s::finite(__tune_x[__tune_at], #name)?;
            __tune_at += 1;
            #convert
        })
    };
    match &field.domain.kind {
        DomainKind::Float { kind, low, high, q } => {
            let (lo, hi, qq, closed) = float_params(*kind, low, high, q);
            let qq = opt(qq);
            let x = quote!(#d::decode_float(__tune_v, #lo, #hi, #qq));
            take(narrow(x, prim, rt, &lo, &hi, closed))
        }
        DomainKind::Normal { q, .. } => {
            let qq = opt(q.as_ref().map(float_arg));
            let x = quote!(#d::decode_normal(__tune_v, #qq));
            take(if prim == Prim::F32 { quote!((#x) as ::core::primitive::f32) } else { x })
        }
        DomainKind::Int { low, high, q, .. } => {
            let (lo, hi) = (int_arg(low), int_arg(high));
            let qq = opt(q.as_ref().map(int_arg));
            take(quote!((#d::decode_int(__tune_v, #lo, #hi, #qq)) as #ty))
        }
        DomainKind::Choice { options, .. } => {
            let f = &site.option_fn;
            let n = options.len();
            take(quote!(#f(#d::decode_index(__tune_v, #n))))
        }
        DomainKind::Constant(expr) => value(expr, ty, rt),
        DomainKind::Derived(_) => placeholder(ty, rt),
        DomainKind::Nested => quote!({
            let __tune_n = <#ty as #rt::__private::Space>::num_dims();
            let __tune_v = <#ty as #rt::__private::Space>::decode_from(
                &__tune_x[__tune_at..__tune_at + __tune_n],
            )
            .map_err(|__tune_e| #s::nest_error(__tune_e, #name))?;
            __tune_at += __tune_n;
            __tune_v
        }),
        DomainKind::Invalid(_) => quote!(::core::unreachable!()),
    }
}

fn check_stmt(field: &Field, site: &Site<'_>) -> TokenStream {
    let rt = site.rt;
    let d = quote!(#rt::__private::domain);
    let s = quote!(#rt::__private::space);
    let name = &site.rel_name;
    let access = &site.access;
    let ty = &field.ty;
    let prim = classify(ty);
    let domain = field.domain.render();
    match &field.domain.kind {
        DomainKind::Float { kind, low, high, q } => {
            let (lo, hi, qq, closed) = float_params(*kind, low, high, q);
            let qq = opt(qq);
            let check = if prim == Prim::F32 { quote!(check_float32) } else { quote!(check_float) };
            quote! {
                #d::#check(__tune_errors, __tune_prefix, #name, #domain, #access, #lo, #hi, #closed, #qq);
            }
        }
        DomainKind::Normal { q, .. } => {
            let qq = opt(q.as_ref().map(float_arg));
            let check =
                if prim == Prim::F32 { quote!(check_normal32) } else { quote!(check_normal) };
            quote! { #d::#check(__tune_errors, __tune_prefix, #name, #domain, #access, #qq); }
        }
        DomainKind::Int { kind, low, high, q } => {
            let (lo, hi) = (int_arg(low), int_arg(high));
            let qq = opt(q.as_ref().map(int_arg));
            let closed = *kind == IntKind::QRandInt;
            quote! {
                #d::check_int(
                    __tune_errors, __tune_prefix, #name, #domain,
                    (#access) as ::core::primitive::i128, #lo, #hi, #closed, #qq,
                );
            }
        }
        DomainKind::Choice { options, .. } => {
            let f = &site.option_fn;
            let n = options.len();
            quote! {
                #s::check_choice(__tune_errors, __tune_prefix, #name, #domain, &#access, #n, #f);
            }
        }
        DomainKind::Constant(expr) => {
            let v = value(expr, ty, rt);
            quote! { #s::check_constant(__tune_errors, __tune_prefix, #name, &#access, &(#v)); }
        }
        DomainKind::Derived(_) => {
            let f = derived_fn(&field.ident);
            quote! {
                #s::check_derived(__tune_errors, __tune_prefix, #name, &#access, &Self::#f(self));
            }
        }
        DomainKind::Nested => quote! {
            <#ty as #rt::__private::Space>::check_domains(
                &#access,
                &#s::join_prefix(__tune_prefix, #name),
                __tune_errors,
            );
        },
        DomainKind::Invalid(_) => quote!(),
    }
}

fn derived_fn(field: &Ident) -> Ident {
    format_ident!("__tune_derived_{}", field.unraw())
}

fn field_name(field: &Ident) -> String {
    field.unraw().to_string()
}

/// The `#[serde(...)]` attributes among `attrs`, which the deserialization shadow repeats.
fn serde_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("serde"))
}

// ---------------------------------------------------------------------------------------
// Structs.

fn expand_struct_impl(item: &Item, fields: &[Field], rt: &TokenStream) -> TokenStream {
    let ident = &item.ident;
    let sites: Vec<Site<'_>> = fields
        .iter()
        .map(|f| Site {
            rt,
            rel_name: field_name(&f.ident),
            access: {
                let fi = &f.ident;
                quote!(self.#fi)
            },
            option_fn: format_ident!("__tune_option_{}", f.ident.unraw()),
            in_variant: false,
        })
        .collect();

    let option_fns = fields.iter().zip(&sites).filter_map(|(f, site)| match &f.domain.kind {
        DomainKind::Choice { options, .. } => Some(option_fn(site, f, options)),
        _ => None,
    });

    // Grid digits: grid fields and nested spaces, the last declared varying fastest.
    let radix = |f: &Field| -> Option<TokenStream> {
        match &f.domain.kind {
            DomainKind::Choice { grid: true, options, .. } => {
                let n = options.len();
                Some(quote!(#n))
            }
            DomainKind::Nested => {
                let ty = &f.ty;
                Some(quote_spanned!(ty.span()=> <#ty as #rt::__private::Space>::grid_size()))
            }
            _ => None,
        }
    };
    let digits: Vec<Option<Ident>> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| radix(f).map(|_| format_ident!("__tune_g{}", i)))
        .collect();
    let radices: Vec<TokenStream> = fields.iter().filter_map(radix).collect();
    let digit_stmts = fields.iter().zip(&digits).rev().filter_map(|(f, g)| {
        let g = g.as_ref()?;
        let r = radix(f)?;
        Some(quote! {
            let #g = __tune_rest % (#r);
            __tune_rest /= #r;
        })
    });

    let idents: Vec<&Ident> = fields.iter().map(|f| &f.ident).collect();
    let samples = fields
        .iter()
        .zip(&sites)
        .zip(&digits)
        .map(|((f, site), g)| sample_expr(f, site, g.as_ref()));

    let derived: Vec<&Field> =
        fields.iter().filter(|f| matches!(f.domain.kind, DomainKind::Derived(_))).collect();
    let derive_call =
        (!derived.is_empty()).then(|| quote!(Self::__tune_derive(&mut __tune_config);));
    let inherent = (!derived.is_empty()).then(|| {
        let assigns = derived.iter().map(|f| {
            let fi = &f.ident;
            let df = derived_fn(fi);
            quote!(__tune_config.#fi = Self::#df(__tune_config);)
        });
        let fns = derived.iter().map(|f| {
            let df = derived_fn(&f.ident);
            let ty = &f.ty;
            let DomainKind::Derived(closure) = &f.domain.kind else { unreachable!() };
            let call = quote_spanned! {closure.span()=>
                #rt::__private::space::derived::<Self, #ty, _>(__tune_config, #closure)
            };
            quote! {
                #[doc(hidden)]
                fn #df(__tune_config: &Self) -> #ty { #call }
            }
        });
        quote! {
            impl #ident {
                #[doc(hidden)]
                fn __tune_derive(__tune_config: &mut Self) { #(#assigns)* }
                #(#fns)*
            }
        }
    });

    let dims = fields.iter().map(|f| field_dims(f, rt));
    let cond = quote!(__tune_condition);
    let describes = fields.iter().zip(&sites).map(|(f, site)| describe_stmt(f, site, &cond));
    let encodes = fields.iter().zip(&sites).map(|(f, site)| encode_stmt(f, site));
    let decodes = fields.iter().zip(&sites).map(|(f, site)| decode_expr(f, site));
    let checks = fields.iter().zip(&sites).map(|(f, site)| check_stmt(f, site));
    let deserialize = (!derived.is_empty()).then(|| expand_deserialize(item, fields, rt));

    quote! {
        const _: () = {
            #(#option_fns)*
            #inherent
            #deserialize

            #[automatically_derived]
            #[allow(unused_variables, unused_mut, unused_assignments, clippy::all)]
            impl #rt::__private::Space for #ident {
                #[inline]
                fn grid_size() -> ::core::primitive::usize {
                    1usize #(* (#radices))*
                }

                fn sample_at<__TuneR: #rt::__private::Rng + ?::core::marker::Sized>(
                    __tune_rng: &mut __TuneR,
                    __tune_index: ::core::primitive::usize,
                ) -> Self {
                    let __tune_size = <Self as #rt::__private::Space>::grid_size();
                    let mut __tune_rest =
                        if __tune_size == 0 { 0 } else { __tune_index % __tune_size };
                    #(#digit_stmts)*
                    let mut __tune_config = Self { #(#idents: #samples,)* };
                    #derive_call
                    __tune_config
                }

                #[inline]
                fn num_dims() -> ::core::primitive::usize {
                    0usize #(+ #dims)*
                }

                fn describe(
                    __tune_dims: &mut #rt::__private::Vec<#rt::__private::Dim>,
                    __tune_prefix: &::core::primitive::str,
                    __tune_condition: ::core::option::Option<#rt::__private::Condition>,
                ) {
                    #(#describes)*
                }

                fn encode_into(&self, __tune_out: &mut [::core::primitive::f64]) {
                    let mut __tune_at = 0usize;
                    #(#encodes)*
                }

                fn decode_from(
                    __tune_x: &[::core::primitive::f64],
                ) -> ::core::result::Result<Self, #rt::__private::SpaceError> {
                    let mut __tune_at = 0usize;
                    let mut __tune_config = Self { #(#idents: #decodes,)* };
                    #derive_call
                    ::core::result::Result::Ok(__tune_config)
                }

                fn check_domains(
                    &self,
                    __tune_prefix: &::core::primitive::str,
                    __tune_errors: &mut #rt::__private::Vec<#rt::__private::DomainViolation>,
                ) {
                    #(#checks)*
                }
            }
        };
    }
}

/// `Deserialize` for a struct with derived fields: through a shadow struct in which the
/// derived fields are optional, computed when absent.
fn expand_deserialize(item: &Item, fields: &[Field], rt: &TokenStream) -> TokenStream {
    let ident = &item.ident;
    let serde = quote!(#rt::__private::serde);
    let serde_crate = serde_path(rt);
    let name = ident.unraw().to_string();
    let container_attrs = serde_attrs(&item.attrs);
    let shadow_fields = fields.iter().map(|f| {
        let attrs = serde_attrs(&f.attrs);
        let fi = &f.ident;
        let ty = &f.ty;
        if matches!(f.domain.kind, DomainKind::Derived(_)) {
            quote!(#(#attrs)* #[serde(default)] #fi: ::core::option::Option<#ty>)
        } else {
            quote!(#(#attrs)* #fi: #ty)
        }
    });
    let inits = fields.iter().map(|f| {
        let fi = &f.ident;
        if matches!(f.domain.kind, DomainKind::Derived(_)) {
            let p = placeholder(&f.ty, rt);
            quote!(#fi: #p)
        } else {
            quote!(#fi: __tune_shadow.#fi)
        }
    });
    let computes =
        fields.iter().filter(|f| matches!(f.domain.kind, DomainKind::Derived(_))).map(|f| {
            let fi = &f.ident;
            let df = derived_fn(fi);
            quote! {
                __tune_config.#fi = match __tune_shadow.#fi {
                    ::core::option::Option::Some(__tune_v) => __tune_v,
                    ::core::option::Option::None => Self::#df(&__tune_config),
                };
            }
        });
    quote! {
        #[automatically_derived]
        impl<'de> #serde::Deserialize<'de> for #ident {
            fn deserialize<__TuneD>(
                __tune_deserializer: __TuneD,
            ) -> ::core::result::Result<Self, <__TuneD as #serde::Deserializer<'de>>::Error>
            where
                __TuneD: #serde::Deserializer<'de>,
            {
                #[derive(#serde::Deserialize)]
                #[serde(crate = #serde_crate, deny_unknown_fields, rename = #name)]
                #(#container_attrs)*
                struct __TuneShadow { #(#shadow_fields,)* }

                let __tune_shadow =
                    <__TuneShadow as #serde::Deserialize<'de>>::deserialize(__tune_deserializer)?;
                let mut __tune_config = Self { #(#inits,)* };
                #(#computes)*
                ::core::result::Result::Ok(__tune_config)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Enums.

fn expand_enum_impl(item: &Item, rt: &TokenStream) -> TokenStream {
    let ident = &item.ident;
    let Body::Enum(variants) = &item.body else { return TokenStream::new() };
    let s = quote!(#rt::__private::space);
    let d = quote!(#rt::__private::domain);
    let n_variants = variants.len();
    let type_name = ident.unraw().to_string();
    let variant_names: Vec<String> = variants.iter().map(|v| v.ident.unraw().to_string()).collect();

    let mut option_fns = Vec::new();
    let mut sample_arms = Vec::new();
    let mut describe_blocks = Vec::new();
    let mut encode_arms = Vec::new();
    let mut decode_arms = Vec::new();
    let mut check_arms = Vec::new();
    let mut dims_terms = Vec::new();
    // Offset of the current variant's first dimension: after the selector and every earlier
    // variant's dimensions.
    let mut offset = quote!(1usize);

    for (vi, variant) in variants.iter().enumerate() {
        let vident = &variant.ident;
        let fields: &[Field] = match &variant.shape {
            Shape::Named(fields) => fields,
            _ => &[],
        };
        let vname = &variant_names[vi];
        let sites: Vec<Site<'_>> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let binding = format_ident!("__tune_f{}", i);
                Site {
                    rt,
                    rel_name: format!("{vname}.{}", field_name(&f.ident)),
                    access: quote!((*#binding)),
                    option_fn: format_ident!("__tune_option_{}_{}", vname, f.ident.unraw()),
                    in_variant: true,
                }
            })
            .collect();
        for (f, site) in fields.iter().zip(&sites) {
            if let DomainKind::Choice { options, .. } = &f.domain.kind {
                option_fns.push(option_fn(site, f, options));
            }
        }
        let fidents: Vec<&Ident> = fields.iter().map(|f| &f.ident).collect();
        let bindings: Vec<Ident> =
            (0..fields.len()).map(|i| format_ident!("__tune_f{}", i)).collect();
        let is_named = matches!(variant.shape, Shape::Named(_));
        let pattern = if is_named {
            quote!(Self::#vident { #(#fidents: #bindings),* })
        } else {
            quote!(Self::#vident)
        };
        let arm_index = if vi + 1 == n_variants {
            quote!(_)
        } else {
            let l = Literal::usize_unsuffixed(vi);
            quote!(#l)
        };

        let samples = fields.iter().zip(&sites).map(|(f, site)| sample_expr(f, site, None));
        let construct = if is_named {
            quote!(Self::#vident { #(#fidents: #samples,)* })
        } else {
            quote!(Self::#vident)
        };
        sample_arms.push(quote!(#arm_index => #construct,));

        let vi_lit = Literal::usize_unsuffixed(vi);
        let cond = quote!(__tune_cond);
        let describes = fields.iter().zip(&sites).map(|(f, site)| describe_stmt(f, site, &cond));
        describe_blocks.push(quote! {
            {
                let __tune_cond = ::core::option::Option::Some(#rt::__private::Condition {
                    dim: __tune_selector,
                    choice: #vi_lit,
                });
                #(#describes)*
            }
        });

        let vi_f = f64_lit(vi as f64);
        let encodes = fields.iter().zip(&sites).map(|(f, site)| encode_stmt(f, site));
        encode_arms.push(quote! {
            #pattern => {
                __tune_out[0] = #vi_f;
                let mut __tune_at = #offset;
                #(#encodes)*
            }
        });

        let decodes = fields.iter().zip(&sites).map(|(f, site)| decode_expr(f, site));
        let construct = if is_named {
            quote!(Self::#vident { #(#fidents: #decodes,)* })
        } else {
            quote!(Self::#vident)
        };
        decode_arms.push(quote! {
            #arm_index => {
                let mut __tune_at = #offset;
                #construct
            }
        });

        let checks = fields.iter().zip(&sites).map(|(f, site)| check_stmt(f, site));
        check_arms.push(quote!(#pattern => { #(#checks)* }));

        let dims = fields.iter().map(|f| field_dims(f, rt));
        let variant_dims = quote!((0usize #(+ #dims)*));
        offset = quote!(#offset + #variant_dims);
        dims_terms.push(variant_dims);
    }

    quote! {
        const _: () = {
            #(#option_fns)*

            #[automatically_derived]
            #[allow(unused_variables, unused_mut, unused_assignments, clippy::all)]
            impl #rt::__private::Space for #ident {
                #[inline]
                fn grid_size() -> ::core::primitive::usize {
                    1usize
                }

                fn sample_at<__TuneR: #rt::__private::Rng + ?::core::marker::Sized>(
                    __tune_rng: &mut __TuneR,
                    __tune_index: ::core::primitive::usize,
                ) -> Self {
                    match #d::choice(__tune_rng, #n_variants) {
                        #(#sample_arms)*
                    }
                }

                #[inline]
                fn num_dims() -> ::core::primitive::usize {
                    1usize #(+ #dims_terms)*
                }

                fn describe(
                    __tune_dims: &mut #rt::__private::Vec<#rt::__private::Dim>,
                    __tune_prefix: &::core::primitive::str,
                    __tune_condition: ::core::option::Option<#rt::__private::Condition>,
                ) {
                    let __tune_selector = __tune_dims.len();
                    #s::push(
                        __tune_dims,
                        "",
                        &#s::selector_name(__tune_prefix, #type_name),
                        #s::categorical(&[#(#variant_names),*]),
                        __tune_condition,
                    );
                    #(#describe_blocks)*
                }

                fn encode_into(&self, __tune_out: &mut [::core::primitive::f64]) {
                    #s::fill_nan(__tune_out);
                    match self {
                        #(#encode_arms)*
                    }
                }

                fn decode_from(
                    __tune_x: &[::core::primitive::f64],
                ) -> ::core::result::Result<Self, #rt::__private::SpaceError> {
                    let __tune_selected = #s::finite(__tune_x[0], "")?;
                    ::core::result::Result::Ok(
                        match #d::decode_index(__tune_selected, #n_variants) {
                            #(#decode_arms)*
                        }
                    )
                }

                fn check_domains(
                    &self,
                    __tune_prefix: &::core::primitive::str,
                    __tune_errors: &mut #rt::__private::Vec<#rt::__private::DomainViolation>,
                ) {
                    match self {
                        #(#check_arms)*
                    }
                }
            }
        };
    }
}
