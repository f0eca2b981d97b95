//! Hand-written binary primitives shared by the key layout and the record encodings: single
//! bytes, big-endian integers, fixed-size arrays and byte strings behind a u32 big-endian length.

use crate::StoreError;

/// Builds a key or a record value. A part too long for its u32 length prefix is remembered
/// and reported by [`Writer::finish`], so encoders chain writes and check once.
pub(crate) struct Writer {
    bytes: Vec<u8>,
    too_large: Option<&'static str>,
}

impl Writer {
    /// An empty buffer with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Writer {
        Writer {
            bytes: Vec::with_capacity(capacity),
            too_large: None,
        }
    }

    /// Appends one byte.
    pub(crate) fn u8(&mut self, value: u8) -> &mut Writer {
        self.bytes.push(value);
        self
    }

    /// Appends raw bytes of a fixed-size field (ids, hashes): no length prefix.
    pub(crate) fn raw(&mut self, bytes: &[u8]) -> &mut Writer {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// Appends a u32, big-endian.
    pub(crate) fn u32(&mut self, value: u32) -> &mut Writer {
        self.raw(&value.to_be_bytes())
    }

    /// Appends a u64, big-endian.
    pub(crate) fn u64(&mut self, value: u64) -> &mut Writer {
        self.raw(&value.to_be_bytes())
    }

    /// Appends an i64, big-endian two's complement.
    pub(crate) fn i64(&mut self, value: i64) -> &mut Writer {
        self.raw(&value.to_be_bytes())
    }

    /// Appends a count of following items as a u32, big-endian; `what` names the list if it has
    /// 2^32 items or more.
    pub(crate) fn count(&mut self, n_items: usize, what: &'static str) -> &mut Writer {
        match u32::try_from(n_items) {
            Ok(n) => self.u32(n),
            Err(_) => self.fail(what),
        }
    }

    /// Appends `part` behind its length (u32, big-endian); `what` names the part if it is 4 GiB
    /// or longer.
    pub(crate) fn lp(&mut self, part: &[u8], what: &'static str) -> &mut Writer {
        match u32::try_from(part.len()) {
            Ok(len) => self.u32(len).raw(part),
            Err(_) => self.fail(what),
        }
    }

    fn fail(&mut self, what: &'static str) -> &mut Writer {
        self.too_large.get_or_insert(what);
        self
    }

    /// The bytes, or the first part that did not fit its length prefix.
    pub(crate) fn finish(&mut self) -> Result<Vec<u8>, StoreError> {
        match self.too_large {
            Some(what) => Err(StoreError::TooLarge { what }),
            None => Ok(std::mem::take(&mut self.bytes)),
        }
    }
}

/// Reads a key or a record value written by [`Writer`]. Every failure is
/// `StoreError::Corrupt { what }`, naming the kind of record and nothing of its bytes.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, which hold a `what` (`"subject record"`, ...).
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { rest: bytes, what }
    }

    /// The error for this record.
    pub(crate) fn corrupt(&self) -> StoreError {
        StoreError::Corrupt { what: self.what }
    }

    /// Reads the leading format-version byte and checks that it is `expected`.
    pub(crate) fn version(&mut self, expected: u8) -> Result<(), StoreError> {
        if self.u8()? == expected {
            Ok(())
        } else {
            Err(self.corrupt())
        }
    }

    /// Takes the next `len` bytes.
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < len {
            return Err(self.corrupt());
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a fixed-size field.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads a u32, big-endian.
    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a u64, big-endian.
    pub(crate) fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads an i64, big-endian two's complement.
    pub(crate) fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Reads a length-prefixed part. The length is checked against the bytes that are left
    /// before anything is allocated, so a corrupt length cannot cause a huge allocation.
    pub(crate) fn lp(&mut self) -> Result<&'a [u8], StoreError> {
        let len = self.u32()?;
        let len = usize::try_from(len).map_err(|_| self.corrupt())?;
        self.take(len)
    }

    /// Reads a length-prefixed UTF-8 string.
    pub(crate) fn lp_str(&mut self) -> Result<&'a str, StoreError> {
        let bytes = self.lp()?;
        std::str::from_utf8(bytes).map_err(|_| self.corrupt())
    }

    /// Reads a u32 count of items that take at least `min_item_len` bytes each, and checks that
    /// so many could fit in what is left (so a corrupt count fails before any allocation).
    pub(crate) fn count(&mut self, min_item_len: usize) -> Result<usize, StoreError> {
        let n_items = usize::try_from(self.u32()?).map_err(|_| self.corrupt())?;
        match n_items.checked_mul(min_item_len) {
            Some(min_len) if min_len <= self.rest.len() => Ok(n_items),
            _ => Err(self.corrupt()),
        }
    }

    /// Checks that every byte was read: trailing bytes mean the record is not what it claims.
    pub(crate) fn finish(self) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt())
        }
    }
}
