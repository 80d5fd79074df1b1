//! Code generation for `#[trainable]`. Only generates; every user error was reported by
//! `validate`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::parse::{Amount, Args, Class, Function, Model, Resource, ResourceKey, StateField};

pub(crate) fn expand(args: &Args, model: &Model, rt: &TokenStream) -> TokenStream {
    match model {
        Model::Class(class) => expand_class(args, class, rt),
        Model::Function(function) => expand_function(args, function, rt, true),
    }
}

/// What is still generated when there are errors: the item itself, and the impls of our
/// traits where the types they need are known, so that the user's `impl Trainable` does not
/// add errors of its own.
pub(crate) fn expand_dummy(args: &Args, model: &Model, rt: &TokenStream) -> TokenStream {
    match model {
        Model::Class(class) => {
            let item = &class.item;
            let ident = &item.ident;
            if !item.generics.params.is_empty() {
                return quote!(#item);
            }
            let spec = match (&args.config, &args.metrics) {
                (Some((_, config)), Some((_, metrics))) => {
                    let name = ident.to_string();
                    let data = data_type(args);
                    quote! {
                        impl #rt::__private::TrainableSpec for #ident {
                            type Config = #config;
                            type Metrics = #metrics;
                            type Data = #data;
                            const NAME: &'static str = #name;
                        }
                    }
                }
                _ => TokenStream::new(),
            };
            quote! {
                #item
                const _: () = {
                    #spec
                    impl #rt::__private::Checkpointable for #ident {
                        fn save_state(&self) -> ::core::result::Result<#rt::__private::Vec<u8>, #rt::__private::CheckpointError> {
                            ::core::unimplemented!()
                        }
                        fn load_state(&mut self, _: &[u8]) -> ::core::result::Result<(), #rt::__private::CheckpointError> {
                            ::core::unimplemented!()
                        }
                    }
                };
            }
        }
        Model::Function(function) => match (&function.config, &function.metrics) {
            // The signature is fine: generate the struct, without the parts that had errors.
            (Some(_), Some(_)) if function.signature_ok => {
                expand_function(args, function, rt, false)
            }
            // A method: the attribute is inside an `impl`, where no struct can go.
            _ if function.item.sig.receiver().is_some() => {
                let item = &function.item;
                quote!(#item)
            }
            _ => {
                let item = &function.item;
                let vis = &item.vis;
                let ident = struct_ident(args, function);
                quote! {
                    #item
                    #[allow(dead_code)]
                    #vis struct #ident;
                }
            }
        },
    }
}

fn expand_class(args: &Args, class: &Class, rt: &TokenStream) -> TokenStream {
    let item = &class.item;
    let ident = &item.ident;
    let name = ident.to_string();
    let (config, metrics) = match (&args.config, &args.metrics) {
        (Some((_, c)), Some((_, m))) => (c, m),
        // `validate` reported the missing option.
        _ => return quote!(#item),
    };
    let spec = expand_spec(ident, config, metrics, &name, args, rt);
    let checkpoint = expand_checkpointable(class, rt);
    let test = expand_test(args, ident, &to_snake_case(&name), quote!(check_save_restore), rt);
    quote! {
        #item
        const _: () = {
            #spec
            #checkpoint
        };
        #test
    }
}

fn expand_spec(
    ident: &syn::Ident,
    config: &syn::Type,
    metrics: &syn::Type,
    name: &str,
    args: &Args,
    rt: &TokenStream,
) -> TokenStream {
    // Spanned on the user's types, so that "`X` is not a search space" points at them.
    let config_ty = quote_spanned!(config.span()=> type Config = #config;);
    let metrics_ty = quote_spanned!(metrics.span()=> type Metrics = #metrics;);
    let data = data_type(args);
    let data_ty = quote_spanned!(data.span()=> type Data = #data;);
    let resources = expand_resources(args, rt);
    quote! {
        #[automatically_derived]
        impl #rt::__private::TrainableSpec for #ident {
            #config_ty
            #metrics_ty
            #data_ty
            const NAME: &'static str = #name;
            #resources
        }
    }
}

/// `data = Type`, or `()`.
fn data_type(args: &Args) -> TokenStream {
    match &args.data {
        Some((_, ty)) => quote!(#ty),
        None => quote!(()),
    }
}

/// `resources` from the `resources(..)` declaration, and `static_resources`: the same
/// request when every amount is a literal (or nothing is declared: the default), so that
/// `Tuner::run` refuses a request that can never be granted before the first trial.
fn expand_resources(args: &Args, rt: &TokenStream) -> TokenStream {
    let literal = args.resources.iter().all(|r| matches!(r.amount, Amount::Literal { .. }));
    let statics = if args.resources.is_empty() {
        quote! {
            fn static_resources() -> ::core::option::Option<#rt::__private::Resources> {
                ::core::option::Option::Some(#rt::__private::Resources::default())
            }
        }
    } else if literal {
        let assignments = args.resources.iter().map(|r| expand_assignment(r, rt));
        quote! {
            fn static_resources() -> ::core::option::Option<#rt::__private::Resources> {
                let mut __tune_resources = #rt::__private::Resources::default();
                #(#assignments)*
                ::core::option::Option::Some(__tune_resources)
            }
        }
    } else {
        TokenStream::new()
    };
    if args.resources.is_empty() {
        return statics;
    }
    let assignments = args.resources.iter().map(|r| expand_assignment(r, rt));
    quote! {
        fn resources(__tune_config: &Self::Config) -> #rt::__private::Resources {
            let _ = __tune_config;
            let mut __tune_resources = #rt::__private::Resources::default();
            #(#assignments)*
            __tune_resources
        }
        #statics
    }
}

/// One entry of `resources(..)` as an assignment to `__tune_resources` (a computed amount
/// reads `__tune_config`).
fn expand_assignment(resource: &Resource, rt: &TokenStream) -> TokenStream {
    let amount = match &resource.amount {
        Amount::Literal { value, .. } => {
            let lit = proc_macro2::Literal::f64_suffixed(*value);
            quote!(#lit)
        }
        Amount::Computed(expr) => quote_spanned! {expr.span()=>
            #rt::__private::resource_from_config(__tune_config, #expr)
        },
    };
    match &resource.key {
        ResourceKey::Named(key) => quote!(__tune_resources.#key = #amount;),
        ResourceKey::Custom(name) => {
            quote!(__tune_resources = __tune_resources.with_custom(#name, #amount);)
        }
    }
}

/// `Checkpointable` from the fields not marked `#[checkpoint(skip)]`: the state is a JSON
/// object keyed by field name (by position for a tuple struct), streamed out through a
/// borrowing `Serialize` impl and read back field by field.
fn expand_checkpointable(class: &Class, rt: &TokenStream) -> TokenStream {
    let ident = &class.item.ident;
    let name = ident.to_string();
    let saved: Vec<_> = class.fields.iter().filter(|f| !f.skip && !f.binary).collect();
    let binary: Vec<_> = class.fields.iter().filter(|f| f.binary && !f.skip).collect();
    let count = saved.len();
    let key_of = |f: &&StateField| match &f.member {
        syn::Member::Named(ident) => {
            let key = ident.to_string();
            key.strip_prefix("r#").map(str::to_owned).unwrap_or(key)
        }
        syn::Member::Unnamed(index) => index.index.to_string(),
    };
    let keys: Vec<String> = saved.iter().map(key_of).collect();
    let tensors = expand_tensors(&binary, &binary.iter().map(key_of).collect::<Vec<_>>(), rt);
    // Each call is spanned on the field's type, so that a type without `Serialize` or
    // `Deserialize` is reported on the user's field.
    let writes = saved.iter().zip(&keys).map(|(f, key)| {
        let (ty, member) = (&f.ty, &f.member);
        quote_spanned! {ty.span()=>
            #rt::__private::serde::ser::SerializeStruct::serialize_field::<#ty>(
                &mut __tune_state, #key, &self.0.#member,
            )?;
        }
    });
    let locals: Vec<_> = (0..count).map(|i| format_ident!("__tune_field_{}", i)).collect();
    let reads = saved.iter().zip(&keys).zip(&locals).map(|((f, key), local)| {
        let ty = &f.ty;
        quote_spanned! {ty.span()=>
            let #local = __tune_fields.take::<#ty>(#key)?;
        }
    });
    let members = saved.iter().map(|f| &f.member);
    quote! {
        #[allow(non_camel_case_types)]
        struct __tune_StateRef<'__tune_a>(&'__tune_a #ident);

        impl #rt::__private::serde::Serialize for __tune_StateRef<'_> {
            fn serialize<__TuneS: #rt::__private::serde::Serializer>(
                &self,
                __tune_serializer: __TuneS,
            ) -> ::core::result::Result<__TuneS::Ok, __TuneS::Error> {
                let mut __tune_state = #rt::__private::serde::Serializer::serialize_struct(
                    __tune_serializer, #name, #count,
                )?;
                #(#writes)*
                #rt::__private::serde::ser::SerializeStruct::end(__tune_state)
            }
        }

        #[automatically_derived]
        impl #rt::__private::Checkpointable for #ident {
            #tensors

            fn save_state(&self) -> ::core::result::Result<#rt::__private::Vec<u8>, #rt::__private::CheckpointError> {
                #rt::__private::save_json(<Self as #rt::__private::TrainableSpec>::NAME, &__tune_StateRef(self))
            }

            fn load_state(&mut self, __tune_bytes: &[u8]) -> ::core::result::Result<(), #rt::__private::CheckpointError> {
                #[allow(unused_mut)]
                let mut __tune_fields = #rt::__private::StateFields::parse(
                    <Self as #rt::__private::TrainableSpec>::NAME,
                    __tune_bytes,
                )?;
                #(#reads)*
                // Assigned only once every field has been read: a bad checkpoint leaves
                // the instance untouched.
                #(self.#members = #locals;)*
                ::core::result::Result::Ok(())
            }
        }
    }
}

/// `save_tensors` and `restore_tensors` for the `#[checkpoint(binary)]` fields: one
/// tensor per field in `state.safetensors`, read back whole before any is assigned.
fn expand_tensors(binary: &[&StateField], keys: &[String], rt: &TokenStream) -> TokenStream {
    if binary.is_empty() {
        return TokenStream::new();
    }
    // Spanned on the field's type: a type that is no tensor is reported there.
    let views = binary.iter().zip(keys).map(|(f, key)| {
        let (ty, member) = (&f.ty, &f.member);
        quote_spanned! {ty.span()=>
            (#key, <#ty as #rt::__private::TensorField>::tensor(&self.#member))
        }
    });
    let locals: Vec<_> = (0..binary.len()).map(|i| format_ident!("__tune_tensor_{}", i)).collect();
    let reads = binary.iter().zip(keys).zip(&locals).map(|((f, key), local)| {
        let ty = &f.ty;
        quote_spanned! {ty.span()=>
            let #local = __tune_file.take::<#ty>(#key)?;
        }
    });
    let members = binary.iter().map(|f| &f.member);
    quote! {
        const TENSORS: bool = true;

        fn save_tensors(&self, __tune_dir: &#rt::__private::Path) -> ::core::result::Result<(), #rt::__private::CheckpointError> {
            #rt::__private::write_tensors(
                __tune_dir,
                <Self as #rt::__private::TrainableSpec>::NAME,
                #rt::__private::Vec::from([#(#views),*]),
            )
        }

        fn restore_tensors(&mut self, __tune_dir: &#rt::__private::Path) -> ::core::result::Result<(), #rt::__private::CheckpointError> {
            let __tune_file = #rt::__private::TensorFile::open(
                __tune_dir,
                <Self as #rt::__private::TrainableSpec>::NAME,
            )?;
            #(#reads)*
            #(self.#members = #locals;)*
            ::core::result::Result::Ok(())
        }
    }
}

fn expand_test(
    args: &Args,
    ident: &syn::Ident,
    snake: &str,
    check: TokenStream,
    rt: &TokenStream,
) -> TokenStream {
    if matches!(args.test, Some((_, false))) {
        return TokenStream::new();
    }
    let test_ident = format_ident!("__tune_save_restore_{}", snake, span = ident.span());
    if args.test_config.is_none() && args.test_data.is_none() {
        let call = match &args.test_steps {
            Some((_, steps)) => {
                let steps_fn = format_ident!("{}_steps", check.to_string());
                quote!(#rt::__private::#steps_fn::<#ident>(#steps))
            }
            None => quote!(#rt::__private::#check::<#ident>()),
        };
        return quote! {
            /// The save/restore check generated by `#[trainable]`.
            #[cfg(test)]
            #[test]
            #[doc(hidden)]
            fn #test_ident() {
                #call;
            }
        };
    }
    // Each call is spanned on the user's function, so that a function of the wrong type
    // is reported there.
    let steps = args
        .test_steps
        .as_ref()
        .map(|(_, steps)| quote!(let __tune_options = __tune_options.steps(#steps, #steps);));
    let config = args.test_config.as_ref().map(|(_, path)| {
        quote_spanned! {path.span()=>
            let __tune_options = #rt::__private::test_config::<#ident>(__tune_options, #path());
        }
    });
    let data = args.test_data.as_ref().map(|(_, path)| {
        quote_spanned! {path.span()=>
            let __tune_options = #rt::__private::test_data::<#ident>(__tune_options, #path());
        }
    });
    let with = format_ident!("{}_with", check.to_string());
    let options = quote! {
        let __tune_options = #rt::__private::SaveRestoreOptions::<
            <#ident as #rt::__private::TrainableSpec>::Config,
        >::new();
        #steps
        #config
        #data
    };
    quote! {
        // Type-checks the test's functions in every build, not only under `cfg(test)`.
        const _: () = {
            #[allow(dead_code)]
            fn __tune_test_options() {
                #options
                let _ = __tune_options;
            }
        };

        /// The save/restore check generated by `#[trainable]`.
        #[cfg(test)]
        #[test]
        #[doc(hidden)]
        fn #test_ident() {
            #options
            #rt::__private::#with::<#ident>(__tune_options);
        }
    }
}

/// The name of the struct generated for a function: `name = ..` or the function's name in
/// PascalCase.
fn struct_ident(args: &Args, function: &Function) -> syn::Ident {
    let fn_ident = &function.item.sig.ident;
    match &args.name {
        Some((_, name)) => name.clone(),
        None => syn::Ident::new(&to_pascal_case(&fn_ident.unraw_string()), fn_ident.span()),
    }
}

/// `complete`: false when expanding beside errors: no resources, no test.
fn expand_function(
    args: &Args,
    function: &Function,
    rt: &TokenStream,
    complete: bool,
) -> TokenStream {
    let item = &function.item;
    let (Some(config), Some(metrics)) = (&function.config, &function.metrics) else {
        return quote!(#item);
    };
    let fn_ident = &item.sig.ident;
    let vis = &item.vis;
    let fn_name = fn_ident.unraw_string();
    let ident = struct_ident(args, function);
    let spec = if complete {
        expand_spec(&ident, config, metrics, &fn_name, args, rt)
    } else {
        expand_spec(&ident, config, metrics, &fn_name, &Args::default(), rt)
    };
    let doc = format!(
        "The trainable of the training function [`{fn_name}`], generated by `#[trainable]`."
    );
    let output_span = match &item.sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => item.sig.span(),
    };
    // Spanned on the return type: a function whose signature does not coerce to a
    // `TrainFn` is reported there.
    let func = match fn_ident.to_string().strip_prefix("r#") {
        Some(raw) => syn::Ident::new_raw(raw, output_span),
        None => syn::Ident::new(&fn_name, output_span),
    };
    let test = if complete {
        expand_test(args, &ident, &fn_name, quote!(check_function_trainable), rt)
    } else {
        TokenStream::new()
    };
    quote! {
        #item

        #[doc = #doc]
        #vis struct #ident {
            __tune_runner: #rt::__private::FunctionRunner<#config, #metrics>,
        }

        const _: () = {
            impl ::core::fmt::Debug for #ident {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    ::core::fmt::Debug::fmt(&self.__tune_runner, f)
                }
            }

            #spec

            #[automatically_derived]
            impl #rt::__private::Checkpointable for #ident {
                fn save_state(&self) -> ::core::result::Result<#rt::__private::Vec<u8>, #rt::__private::CheckpointError> {
                    self.__tune_runner.save_state()
                }

                fn load_state(&mut self, __tune_bytes: &[u8]) -> ::core::result::Result<(), #rt::__private::CheckpointError> {
                    self.__tune_runner.load_state(__tune_bytes)
                }

                fn state_iteration(&self) -> ::core::option::Option<u64> {
                    self.__tune_runner.state_iteration()
                }
            }

            #[automatically_derived]
            impl #rt::__private::Trainable for #ident {
                fn setup(
                    __tune_config: &#config,
                    __tune_ctx: &#rt::__private::TrialContext,
                ) -> #rt::__private::TrainResult<Self> {
                    let __tune_fn: #rt::__private::TrainFn<#config, #metrics> = #func;
                    ::core::result::Result::Ok(Self {
                        __tune_runner: #rt::__private::FunctionRunner::new(
                            <Self as #rt::__private::TrainableSpec>::NAME,
                            __tune_fn,
                            __tune_config,
                            __tune_ctx,
                        ),
                    })
                }

                fn step(&mut self) -> #rt::__private::TrainResult<#metrics> {
                    self.__tune_runner.step()
                }

                fn cleanup(&mut self) {
                    self.__tune_runner.cleanup();
                }

                fn save_files(&self, __tune_dir: &#rt::__private::Path) -> #rt::__private::TrainResult<()> {
                    self.__tune_runner.save_files(__tune_dir)
                }

                fn restore_files(&mut self, __tune_dir: &#rt::__private::Path) -> #rt::__private::TrainResult<()> {
                    self.__tune_runner.restore_files(__tune_dir)
                }
            }

            #[automatically_derived]
            impl #rt::__private::FunctionTrainable for #ident {
                fn runner(&mut self) -> &mut #rt::__private::FunctionRunner<#config, #metrics> {
                    &mut self.__tune_runner
                }
            }
        };

        #test
    }
}

trait UnrawString {
    fn unraw_string(&self) -> String;
}

impl UnrawString for syn::Ident {
    fn unraw_string(&self) -> String {
        let s = self.to_string();
        s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
    }
}

fn to_pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn to_snake_case(camel: &str) -> String {
    let camel = camel.strip_prefix("r#").unwrap_or(camel);
    let mut out = String::with_capacity(camel.len() + 4);
    let chars: Vec<char> = camel.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{to_pascal_case, to_snake_case};

    #[test]
    fn case_conversions() {
        assert_eq!(to_pascal_case("train_mnist"), "TrainMnist");
        assert_eq!(to_pascal_case("train"), "Train");
        assert_eq!(to_pascal_case("train_v2_model"), "TrainV2Model");
        assert_eq!(to_snake_case("Guesser"), "guesser");
        assert_eq!(to_snake_case("MyBigModel"), "my_big_model");
        assert_eq!(to_snake_case("HTTPModel"), "http_model");
    }
}
