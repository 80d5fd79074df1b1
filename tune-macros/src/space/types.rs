//! What the macro knows about a field's type: the primitive types each domain can fill.

use quote::ToTokens;
use syn::Type;

/// A field type as far as domain checks go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Prim {
    F32,
    F64,
    /// An integer type and its range (`isize`/`usize` taken as 64-bit).
    Int {
        name: &'static str,
        min: i128,
        max: i128,
    },
    Bool,
    Char,
    /// `String`.
    String,
    /// `&str` (`&'static str`).
    Str,
    /// Anything else: a user type, a nested space, a collection.
    Other,
}

impl Prim {
    pub(crate) fn is_float(self) -> bool {
        matches!(self, Prim::F32 | Prim::F64)
    }
}

/// Classifies a field type by its last path segment (`f64`, `core::primitive::f64`).
pub(crate) fn classify(ty: &Type) -> Prim {
    match ty {
        Type::Group(g) => classify(&g.elem),
        Type::Paren(p) => classify(&p.elem),
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => Prim::Str,
            _ => Prim::Other,
        },
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else { return Prim::Other };
            if !last.arguments.is_empty() {
                return Prim::Other;
            }
            let name = last.ident.to_string();
            let int = |name: &'static str, min: i128, max: i128| Prim::Int { name, min, max };
            match name.as_str() {
                "f32" => Prim::F32,
                "f64" => Prim::F64,
                "i8" => int("i8", i8::MIN.into(), i8::MAX.into()),
                "i16" => int("i16", i16::MIN.into(), i16::MAX.into()),
                "i32" => int("i32", i32::MIN.into(), i32::MAX.into()),
                "i64" => int("i64", i64::MIN.into(), i64::MAX.into()),
                "i128" => int("i128", i128::MIN, i128::MAX),
                "isize" => int("isize", i64::MIN.into(), i64::MAX.into()),
                "u8" => int("u8", 0, u8::MAX.into()),
                "u16" => int("u16", 0, u16::MAX.into()),
                "u32" => int("u32", 0, u32::MAX.into()),
                "u64" => int("u64", 0, u64::MAX.into()),
                "u128" => int("u128", 0, i128::MAX),
                "usize" => int("usize", 0, u64::MAX.into()),
                "bool" => Prim::Bool,
                "char" => Prim::Char,
                "String" => Prim::String,
                _ => Prim::Other,
            }
        }
        _ => Prim::Other,
    }
}

/// How a type reads in a message: `Vec<u8>` rather than `Vec < u8 >`.
pub(crate) fn render_type(ty: &Type) -> String {
    let s = ty.to_token_stream().to_string();
    s.replace(" < ", "<")
        .replace(" >", ">")
        .replace("< ", "<")
        .replace(" ,", ",")
        .replace("& ", "&")
}
