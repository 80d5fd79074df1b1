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
/// `[T; N]` of `f32`, `f64` or a primitive integer type, and with the feature `ndarray`,
/// `ndarray`'s owned arrays of them (`Array1<f32>`, `Array2<f64>`, `ArrayD<i64>`, ..), stored
/// with their shape.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be checkpointed as a tensor",
    label = "`#[checkpoint(binary)]` takes `Vec<T>`, `Box<[T]>` or `[T; N]` of `f32`, `f64` or an integer type (and `ndarray::Array<T, D>` with tune-runtime's feature `ndarray`)",
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
    if shape.len() != 1 {
        return Err(format!("it has shape {shape:?}, the field is one-dimensional"));
    }
    elements_of(dtype, shape, bytes)
}

/// The numbers of a tensor of any shape, once its type and length are checked.
fn elements_of<E: TensorElement>(
    dtype: Dtype,
    shape: &[usize],
    bytes: &[u8],
) -> Result<Vec<E>, String> {
    if dtype != E::DTYPE {
        return Err(format!("it holds {dtype} numbers, the field is of {}", E::NAME));
    }
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    match count.and_then(|n| n.checked_mul(std::mem::size_of::<E>())) {
        Some(len) if len == bytes.len() => Ok(E::from_bytes(bytes)),
        _ => Err(format!("{} bytes do not hold a tensor of shape {shape:?}", bytes.len())),
    }
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

/// An `ndarray` array is one tensor of its shape (feature `ndarray`). Its numbers are
/// borrowed when the array is in standard (row-major, contiguous) layout and copied in
/// row-major order otherwise; reading checks the number of dimensions (`Array2` takes a
/// 2-dimensional tensor, `ArrayD` any).
#[cfg(feature = "ndarray")]
impl<E: TensorElement, D: ndarray::Dimension> TensorField for ndarray::Array<E, D> {
    fn tensor(&self) -> TensorRef<'_> {
        let data = match self.as_slice() {
            Some(values) => E::to_bytes(values),
            None => {
                let values: Vec<E> = self.iter().copied().collect();
                Cow::Owned(E::to_bytes(&values).into_owned())
            }
        };
        TensorRef { dtype: E::DTYPE, shape: self.shape().to_vec(), data }
    }
    fn from_tensor(dtype: Dtype, shape: &[usize], bytes: &[u8]) -> Result<Self, String> {
        if let Some(ndim) = D::NDIM {
            if shape.len() != ndim {
                return Err(format!(
                    "it has shape {shape:?}, the field is an array of {ndim} dimensions"
                ));
            }
        }
        let values = elements_of::<E>(dtype, shape, bytes)?;
        ndarray::Array::from_shape_vec(ndarray::IxDyn(shape), values)
            .and_then(|a| a.into_dimensionality::<D>())
            .map_err(|e| format!("it does not fit the field's array: {e}"))
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

    /// `ndarray` arrays keep their shape; a transposed (not row-major) array is written in
    /// its logical order; a tensor of another number of dimensions is refused by name.
    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarray_arrays_round_trip_with_their_shape() {
        use ndarray::{Array1, Array2, ArrayD, array};
        let dir = tempfile::tempdir().unwrap();
        let w: Array2<f32> = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let t: Array2<f64> = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]].reversed_axes();
        assert!(t.as_slice().is_none(), "the transposed array is not row-major");
        let b: Array1<i64> = array![-1, 0, 7];
        write_tensors(
            dir.path(),
            "Net",
            vec![("w", w.tensor()), ("t", t.tensor()), ("b", b.tensor())],
        )
        .unwrap();
        let len = std::fs::metadata(dir.path().join(TENSORS_FILE)).unwrap().len();
        assert!(len < 6 * 4 + 6 * 8 + 3 * 8 + 400, "{len} bytes");
        let file = TensorFile::open(dir.path(), "Net").unwrap();
        assert_eq!(file.take::<Array2<f32>>("w").unwrap(), w);
        let back = file.take::<Array2<f64>>("t").unwrap();
        assert_eq!(back.shape(), &[2, 3]);
        assert_eq!(back, t);
        assert_eq!(file.take::<Array1<i64>>("b").unwrap(), b);
        let any = file.take::<ArrayD<f32>>("w").unwrap();
        assert_eq!(any.shape(), &[2, 3]);
        let err = file.take::<Array1<f32>>("w").unwrap_err().to_string();
        assert!(
            err.contains("field `w`: it has shape [2, 3], the field is an array of 1 dimensions"),
            "{err}"
        );
        let err = file.take::<Vec<f32>>("w").unwrap_err().to_string();
        assert!(err.contains("the field is one-dimensional"), "{err}");
        let err = file.take::<Array2<f64>>("w").unwrap_err().to_string();
        assert!(err.contains("it holds F32 numbers, the field is of F64"), "{err}");
    }
}
