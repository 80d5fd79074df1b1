//! Error accumulation shared by the macros, after serde_derive's `Ctxt`: every step records
//! what it finds and the errors are checked once, so a user sees every mistake in one build.

use proc_macro2::TokenStream;

/// Collects the errors of one macro invocation.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// Records an error on the span of `tokens`.
    pub(crate) fn error_spanned<T: quote::ToTokens, M: std::fmt::Display>(
        &mut self,
        tokens: T,
        message: M,
    ) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Every recorded error as `compile_error!` invocations, in the order they were found.
    pub(crate) fn into_compile_errors(self) -> TokenStream {
        self.errors.iter().map(syn::Error::to_compile_error).collect()
    }
}

/// The known name closest to `unknown` by edit distance, when it is close enough to be a
/// likely typo.
pub(crate) fn suggest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(unknown.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance (Levenshtein with adjacent transpositions, so that
/// `unifrom` is one edit from `uniform`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let known = ["uniform", "loguniform", "randint", "choice"];
        assert_eq!(suggest("unifrom", &known), Some("uniform"));
        assert_eq!(suggest("log_uniform", &known), Some("loguniform"));
        assert_eq!(suggest("chioce", &known), Some("choice"));
        assert_eq!(suggest("banana", &known), None);
    }
}
