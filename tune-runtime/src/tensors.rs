//! Binary checkpoints of large numeric state: the fields marked `#[checkpoint(binary)]` go
//! to [`TENSORS_FILE`] (safetensors: a JSON header naming each tensor's type and shape,
//! then the raw little-endian bytes), beside the JSON of the other fields in `state.json`.
//!
//! A `Vec<f32>` of 10 million numbers is a 40 MB file written and read at the speed of the
//! disk, instead of ~14 bytes of JSON text per number. The file is a checkpoint file like
//! any other: the manifest records its length and CRC-32, and a restore refuses it when it
//! does not match.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensorError, SafeTensors, View};

use crate::error::CheckpointError;

/// Name of the file holding the `#[checkpoint(binary)]` fields inside a checkpoint
/// directory.
pub const TENSORS_FILE: &str = "state.safetensors";

/// A tensor borrowed from a field: its element type, shape and little-endian bytes.
#[derive(Debug)]
pub struct TensorRef<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

impl View for TensorRef<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// A number type a tensor can hold.
pub trait TensorElement: Copy + Send + Sync + 'static {
    /// Its safetensors type.
    const DTYPE: Dtype;
    /// Its name in error messages (`F32`).
    const NAME: &'static str;
    /// `values` as little-endian bytes (borrowed on a little-endian machine).
    fn to_bytes(values: &[Self]) -> Cow<'_, [u8]>;
    /// Values from little-endian bytes (a whole number of elements).
    fn from_bytes(bytes: &[u8]) -> Vec<Self>;
}

macro_rules! tensor_element {
    ($($t:ty => $dtype:ident),* $(,)?) => {$(
        impl TensorElement for $t {
            const DTYPE: Dtype = Dtype::$dtype;
            const NAME: &'static str = stringify!($dtype);

            fn to_bytes(values: &[Self]) -> Cow<'_, [u8]> {
                if cfg!(target_endian = "little") {
                    Cow::Borrowed(bytemuck::cast_slice(values))
                } else {
                    Cow::Owned(values.iter().flat_map(|v| v.to_le_bytes()).collect())
                }
            }

            fn from_bytes(bytes: &[u8]) -> Vec<Self> {
                if cfg!(target_endian = "little") {
                    bytemuck::pod_collect_to_vec(bytes)
                } else {
                    const N: usize = std::mem::size_of::<$t>();
                    bytes
                        .chunks_exact(N)
                        .map(|c| {
                            let mut a = [0u8; N];
                            a.copy_from_slice(c);
                            <$t>::from_le_bytes(a)
                        })
                        .collect()
                }
            }
        }
    )*};
}
tensor_element!(
    f32 => F32, f64 => F64, i8 => I8, i16 => I16, i32 => I32, i64 => I64,
    u8 => U8, u16 => U16, u32 => U32, u64 => U64,
);

/// A field type that `#[checkpoint(binary)]` stores as a tensor: `Vec<T>`, `Box<[T]>` and
/// `[T; N]` of `f32`, `f64` or a primitive integer type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be checkpointed as a tensor",
    label = "`#[checkpoint(binary)]` takes `Vec<T>`, `Box<[T]>` or `[T; N]` of `f32`, `f64` or an integer type",
    note = "remove `binary` to checkpoint this field as JSON"
)]
pub trait TensorField: Sized {
    /// The field as a tensor.
    fn tensor(&self) -> TensorRef<'_>;
    /// The field from a tensor's type, shape and bytes; the error says what differs.
    fn from_tensor(dtype: Dtype, shape: &[usize], bytes: &[u8]) -> Result<Self, String>;
}

fn values_of<E: TensorElement>(
    dtype: Dtype,
    shape: &[usize],
    bytes: &[u8],
) -> Result<Vec<E>, String> {
    if dtype != E::DTYPE {
        return Err(format!("it holds {dtype} numbers, the field is of {}", E::NAME));
    }
    if shape.len() != 1 {
        return Err(format!("it has shape {shape:?}, the field is one-dimensional"));
    }
    if shape[0] * std::mem::size_of::<E>() != bytes.len() {
        return Err(format!("{} bytes do not hold {} numbers", bytes.len(), shape[0]));
    }
    Ok(E::from_bytes(bytes))
}

impl<E: TensorElement> TensorField for Vec<E> {
    fn tensor(&self) -> TensorRef<'_> {
        TensorRef { dtype: E::DTYPE, shape: vec![self.len()], data: E::to_bytes(self) }
    }
    fn from_tensor(dtype: Dtype, shape: &[usize], bytes: &[u8]) -> Result<Self, String> {
        values_of(dtype, shape, bytes)
    }
}

impl<E: TensorElement> TensorField for Box<[E]> {
    fn tensor(&self) -> TensorRef<'_> {
        TensorRef { dtype: E::DTYPE, shape: vec![self.len()], data: E::to_bytes(self) }
    }
    fn from_tensor(dtype: Dtype, shape: &[usize], bytes: &[u8]) -> Result<Self, String> {
        values_of(dtype, shape, bytes).map(Vec::into_boxed_slice)
    }
}

impl<E: TensorElement, const N: usize> TensorField for [E; N] {
    fn tensor(&self) -> TensorRef<'_> {
        TensorRef { dtype: E::DTYPE, shape: vec![N], data: E::to_bytes(self) }
    }
    fn from_tensor(dtype: Dtype, shape: &[usize], bytes: &[u8]) -> Result<Self, String> {
        let values = values_of::<E>(dtype, shape, bytes)?;
        let len = values.len();
        values.try_into().map_err(|_| format!("it has {len} numbers, the array {N}"))
    }
}

fn tensor_error(trainable: &'static str, path: &Path, e: SafeTensorError) -> CheckpointError {
    match e {
        SafeTensorError::IoError(source) => {
            CheckpointError::Io { path: path.to_path_buf(), source }
        }
        e => {
            CheckpointError::Tensors { trainable, path: path.to_path_buf(), message: e.to_string() }
        }
    }
}

/// Writes the tensors of a trainable's binary fields to `dir/state.safetensors` and syncs
/// it. Called by the generated `save_tensors`.
#[doc(hidden)]
pub fn write_tensors(
    dir: &Path,
    trainable: &'static str,
    tensors: Vec<(&'static str, TensorRef<'_>)>,
) -> Result<(), CheckpointError> {
    let path = dir.join(TENSORS_FILE);
    let mut info = std::collections::HashMap::new();
    info.insert("trainable".to_owned(), trainable.to_owned());
    safetensors::serialize_to_file(tensors, Some(info), &path)
        .map_err(|e| tensor_error(trainable, &path, e))?;
    let io = |source| CheckpointError::Io { path: path.clone(), source };
    std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io)
}

/// A checkpoint's `state.safetensors`, read whole; the generated `restore_tensors` takes
/// each field from it by name.
#[doc(hidden)]
#[derive(Debug)]
pub struct TensorFile {
    trainable: &'static str,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TensorFile {
    /// Reads `dir/state.safetensors` and checks its header.
    pub fn open(dir: &Path, trainable: &'static str) -> Result<Self, CheckpointError> {
        let path = dir.join(TENSORS_FILE);
        let bytes = std::fs::read(&path)
            .map_err(|source| CheckpointError::Io { path: path.clone(), source })?;
        SafeTensors::read_metadata(&bytes).map_err(|e| tensor_error(trainable, &path, e))?;
        Ok(Self { trainable, path, bytes })
    }

    /// The field `name`, of type `F`.
    pub fn take<F: TensorField>(&self, name: &'static str) -> Result<F, CheckpointError> {
        let error = |message: String| CheckpointError::Tensors {
            trainable: self.trainable,
            path: self.path.clone(),
            message: format!("field `{name}`: {message}"),
        };
        let tensors = SafeTensors::deserialize(&self.bytes)
            .map_err(|e| tensor_error(self.trainable, &self.path, e))?;
        let view = tensors.tensor(name).map_err(|_| error("missing".to_owned()))?;
        F::from_tensor(view.dtype(), view.shape(), view.data()).map_err(error)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_mismatches_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let w: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 3.0).collect();
        let m: [f64; 3] = [1.0, f64::MIN_POSITIVE, -0.0];
        let b: Box<[u16]> = vec![7, 8].into_boxed_slice();
        write_tensors(
            dir.path(),
            "Net",
            vec![("w", w.tensor()), ("m", m.tensor()), ("b", b.tensor())],
        )
        .unwrap();
        let len = std::fs::metadata(dir.path().join(TENSORS_FILE)).unwrap().len();
        assert!(len < 4000 + 6 * 4 + 24 + 4 + 400, "{len} bytes");
        let file = TensorFile::open(dir.path(), "Net").unwrap();
        assert_eq!(file.take::<Vec<f32>>("w").unwrap(), w);
        let back: [f64; 3] = file.take("m").unwrap();
        assert_eq!(back.map(f64::to_bits), m.map(f64::to_bits));
        assert_eq!(file.take::<Box<[u16]>>("b").unwrap(), b);
        let err = file.take::<Vec<f64>>("w").unwrap_err().to_string();
        assert!(err.contains("field `w`: it holds F32 numbers, the field is of F64"), "{err}");
        let err = file.take::<[f64; 4]>("m").unwrap_err().to_string();
        assert!(err.contains("3 numbers, the array 4"), "{err}");
        let err = file.take::<Vec<f32>>("x").unwrap_err().to_string();
        assert!(err.contains("field `x`: missing"), "{err}");
        std::fs::write(dir.path().join(TENSORS_FILE), b"\xff\xff").unwrap();
        assert!(TensorFile::open(dir.path(), "Net").is_err());
    }
}
