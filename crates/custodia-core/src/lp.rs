//! Length-prefixed encoding of multi-part inputs to hashes, HKDF `info` and AAD, so that no two
//! different tuples of parts produce the same bytes (`("ab", "c")` ≠ `("a", "bc")`).

/// Builds an unambiguous byte string from parts: each part is written as its length (u32,
/// big-endian) followed by its bytes.
#[derive(Default, Clone)]
pub struct LengthPrefixed {
    bytes: Vec<u8>,
}

impl LengthPrefixed {
    /// An empty encoding.
    pub fn new() -> LengthPrefixed {
        LengthPrefixed::default()
    }

    /// Appends one part.
    ///
    /// # Panics
    /// If the part is 4 GiB or longer, which no caller produces (parts are ids, labels and
    /// normalized field values).
    pub fn part(mut self, part: impl AsRef<[u8]>) -> LengthPrefixed {
        let part = part.as_ref();
        let len = u32::try_from(part.len()).expect("length-prefixed part under 4 GiB");
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(part);
        self
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl std::fmt::Debug for LengthPrefixed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The parts may be personal data (normalized e-mail addresses for a blind index).
        f.write_str("LengthPrefixed([redacted])")
    }
}
