//! Signed checkpoints in the C2SP formats (`c2sp.org/signed-note`, `c2sp.org/tlog-checkpoint`),
//! the text Go's sumdb, trillian-tessera and the public witness network read:
//!
//! ```text
//! <origin>\n
//! <tree size, decimal>\n
//! <base64 (standard, padded) of the 32-byte root>\n
//! \n
//! — <key name> <base64(key id (4 bytes, big-endian) ‖ signature)>\n     (one line per signature)
//! ```
//!
//! The dash is U+2014 EM DASH. Our signatures are Ed25519 (signature type 0x01) over the body —
//! the first three lines, final newline included, without the blank line. The key name is the
//! origin, and the key id is the first 4 bytes of `SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key)`.
//! The verifier key (what a verifier is given out of band) is
//! `<name>+<key id, 8 lower-case hex>+<base64(0x01 ‖ public key)>`.
//!
//! Parsing is strict, so `parse(text)` succeeds only for text that `to_text` reproduces byte for
//! byte:
//! - the text is UTF-8 without control characters other than newline, and ends in a newline;
//! - the body is exactly three lines: **extension lines are rejected** (our logs never write
//!   them, and a checkpoint we cannot round-trip is one we would mis-verify);
//! - the tree size has no sign and no leading zero; the root is canonical padded base64 of 32
//!   bytes;
//! - there are 1 to 100 signature lines, each `— <name> <base64>` with a name that is non-empty
//!   and holds no whitespace and no `+`, and canonical base64 of at least 5 bytes. Lines by other
//!   keys (witness cosignatures) are kept as they are and ignored by [`Checkpoint::verify`]
//!   unless they match the key asked for.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use custodia_vault::{
    ED25519_PUBLIC_KEY_LEN, ED25519_SIGNATURE_LEN, SigningKey, sha256_parts, verify_ed25519,
};

use crate::{Hash, LedgerError};

/// The signed-note signature type byte of Ed25519.
const ED25519_TYPE: u8 = 0x01;
/// The most signature lines a checkpoint may carry (as Go's `sumdb/note`).
const MAX_SIGNATURES: usize = 100;
/// The prefix of every signature line: EM DASH and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// The signed-note key id of an Ed25519 key: `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[..4]`.
fn key_id(name: &str, public_key: &[u8; ED25519_PUBLIC_KEY_LEN]) -> [u8; 4] {
    let digest = sha256_parts(&[name.as_bytes(), b"\n", &[ED25519_TYPE], public_key]);
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Whether `name` may name a key: non-empty, no whitespace, no `+`, no control characters.
fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// Standard base64 that decodes and re-encodes to the same text (padding present, unused bits
/// zero), so a parsed value prints back exactly.
fn decode_canonical_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(text).ok()?;
    (STANDARD.encode(&bytes) == text).then_some(bytes)
}

/// Signs checkpoints of one log: the origin (which is also the key name) and its Ed25519 key.
pub struct NoteSigner {
    origin: String,
    key: SigningKey,
    key_id: [u8; 4],
}

impl NoteSigner {
    /// A signer for the log called `origin` (e.g. `custodia.example/default/ledger`). The origin
    /// doubles as the key name, so it must be non-empty with no whitespace (newlines included),
    /// no `+` and no control characters.
    pub fn new(origin: &str, key: SigningKey) -> Result<NoteSigner, LedgerError> {
        if origin.is_empty() {
            return Err(LedgerError::InvalidOrigin {
                detail: "the origin is empty",
            });
        }
        if !is_valid_key_name(origin) {
            return Err(LedgerError::InvalidOrigin {
                detail: "the origin holds whitespace, '+' or a control character",
            });
        }
        let key_id = key_id(origin, &key.public_key());
        Ok(NoteSigner {
            origin: origin.to_owned(),
            key,
            key_id,
        })
    }

    /// The origin (and key name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key that verifies this signer's checkpoints.
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.origin.clone(),
            key_id: self.key_id,
            public_key: self.key.public_key(),
        }
    }

    /// A signed checkpoint of the tree of `tree_size` leaves with root `root`.
    pub fn sign(&self, tree_size: u64, root: &Hash) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            origin: self.origin.clone(),
            tree_size,
            root: *root,
            signatures: Vec::new(),
        };
        let signature = self.sign_text(&checkpoint.body());
        checkpoint.signatures.push(signature);
        checkpoint
    }

    /// The signature line of this key over an arbitrary note text.
    pub(crate) fn sign_text(&self, text: &str) -> NoteSignature {
        NoteSignature {
            key_name: self.origin.clone(),
            key_id: self.key_id,
            signature: self.key.sign(text.as_bytes()).to_vec(),
        }
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The signing key prints its public half only.
        f.debug_struct("NoteSigner")
            .field("origin", &self.origin)
            .field("key", &self.key)
            .finish()
    }
}

/// A note verifier key: the key name, its 4-byte id and the Ed25519 public key.
///
/// `Display` and `FromStr` use the verifier-key text `<name>+<8 hex>+<base64(0x01 ‖ key)>`;
/// `FromStr` accepts lower-case hex only and checks that the id matches name and key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifierKey {
    /// The key name (our logs use the origin).
    pub name: String,
    /// `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public_key)[..4]`.
    pub key_id: [u8; 4],
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
}

impl VerifierKey {
    /// A verifier key for `public_key` under `name`, with its key id computed.
    pub fn new(name: &str, public_key: [u8; 32]) -> Result<VerifierKey, LedgerError> {
        if !is_valid_key_name(name) {
            return Err(LedgerError::MalformedVerifierKey {
                detail: "the key name is empty or holds whitespace, '+' or a control character",
            });
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            public_key,
        })
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut data = Vec::with_capacity(1 + ED25519_PUBLIC_KEY_LEN);
        data.push(ED25519_TYPE);
        data.extend_from_slice(&self.public_key);
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            u32::from_be_bytes(self.key_id),
            STANDARD.encode(&data)
        )
    }
}

impl FromStr for VerifierKey {
    type Err = LedgerError;

    fn from_str(s: &str) -> Result<VerifierKey, LedgerError> {
        let malformed = |detail| LedgerError::MalformedVerifierKey { detail };
        // The name holds no '+', so the first two '+' are the separators; base64 may hold more.
        let (name, rest) = s
            .split_once('+')
            .ok_or(malformed("expected <name>+<key id>+<key>"))?;
        let (id_hex, data_b64) = rest
            .split_once('+')
            .ok_or(malformed("expected <name>+<key id>+<key>"))?;
        if !is_valid_key_name(name) {
            return Err(malformed(
                "the key name is empty or holds whitespace, '+' or a control character",
            ));
        }
        if id_hex.len() != 8
            || !id_hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(malformed("the key id is not 8 lower-case hex digits"));
        }
        let id = u32::from_str_radix(id_hex, 16)
            .map_err(|_| malformed("the key id is not 8 lower-case hex digits"))?
            .to_be_bytes();
        let data = decode_canonical_base64(data_b64)
            .ok_or(malformed("the key is not canonical base64"))?;
        let [kind, public @ ..] = data.as_slice() else {
            return Err(malformed("the key is empty"));
        };
        if *kind != ED25519_TYPE {
            return Err(malformed("the key is not an Ed25519 key (type 0x01)"));
        }
        let public_key: [u8; ED25519_PUBLIC_KEY_LEN] = public
            .try_into()
            .map_err(|_| malformed("an Ed25519 key is 32 bytes"))?;
        if key_id(name, &public_key) != id {
            return Err(malformed("the key id does not match the name and key"));
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: id,
            public_key,
        })
    }
}

/// One signature line of a note.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NoteSignature {
    /// The name of the key that made it.
    pub key_name: String,
    /// The key's 4-byte id.
    pub key_id: [u8; 4],
    /// The signature bytes after the key id (64 for Ed25519; other lengths from other kinds of
    /// key, e.g. witness cosignatures, are kept as they are).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line, with its trailing newline.
    fn to_line(&self) -> String {
        let mut data = Vec::with_capacity(4 + self.signature.len());
        data.extend_from_slice(&self.key_id);
        data.extend_from_slice(&self.signature);
        format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.key_name,
            STANDARD.encode(&data)
        )
    }

    /// Parses one line without its newline.
    fn parse_line(line: &str) -> Result<NoteSignature, LedgerError> {
        let malformed = |detail| LedgerError::MalformedCheckpoint { detail };
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(malformed("a signature line does not start with an em dash"))?;
        let (name, data_b64) = rest
            .split_once(' ')
            .ok_or(malformed("a signature line has no signature"))?;
        if !is_valid_key_name(name) {
            return Err(malformed(
                "a signature line's key name is empty or holds '+' or whitespace",
            ));
        }
        let data = decode_canonical_base64(data_b64)
            .ok_or(malformed("a signature is not canonical base64"))?;
        if data.len() < 5 {
            return Err(malformed(
                "a signature is shorter than a key id and one byte",
            ));
        }
        Ok(NoteSignature {
            key_name: name.to_owned(),
            key_id: [data[0], data[1], data[2], data[3]],
            signature: data[4..].to_vec(),
        })
    }
}

/// A signed checkpoint: a log's origin, tree size and root, with the signatures over them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    /// The log's name (first line). Other logs' origins may hold spaces ("go.sum database
    /// tree"); ours equal the key name.
    pub origin: String,
    /// The number of entries.
    pub tree_size: u64,
    /// The root of the tree of the first `tree_size` entries.
    pub root: Hash,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

impl Checkpoint {
    /// Parses the signed-note text strictly (see the module documentation).
    pub fn parse(text: &str) -> Result<Checkpoint, LedgerError> {
        let malformed = |detail| LedgerError::MalformedCheckpoint { detail };
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(malformed("the note holds a control character"));
        }
        let (body, signatures) = text
            .split_once("\n\n")
            .ok_or(malformed("no blank line between body and signatures"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed(
                "the body is not exactly origin, tree size and root (extension lines are not accepted)",
            ));
        };
        if origin.is_empty() {
            return Err(malformed("the origin is empty"));
        }
        let canonical_size = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let tree_size = size
            .parse::<u64>()
            .ok()
            .filter(|_| canonical_size)
            .ok_or(malformed("the tree size is not a canonical decimal u64"))?;
        let root: Hash = decode_canonical_base64(root)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(malformed("the root is not canonical base64 of 32 bytes"))?;
        let lines = signatures
            .strip_suffix('\n')
            .ok_or(malformed("the note does not end in a newline"))?;
        if lines.is_empty() {
            return Err(malformed("the note has no signature"));
        }
        let mut parsed = Vec::new();
        for line in lines.split('\n') {
            if parsed.len() == MAX_SIGNATURES {
                return Err(malformed("the note has more than 100 signatures"));
            }
            parsed.push(NoteSignature::parse_line(line)?);
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            tree_size,
            root,
            signatures: parsed,
        })
    }

    /// The signed-note text: body, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut text = self.body();
        text.push('\n');
        for signature in &self.signatures {
            text.push_str(&signature.to_line());
        }
        text
    }

    /// The signed text: `<origin>\n<tree size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            STANDARD.encode(self.root)
        )
    }

    /// True if a signature line has `key`'s name and id and is a valid Ed25519 signature of
    /// [`body`](Self::body) under its public key.
    pub fn verify(&self, key: &VerifierKey) -> bool {
        let body = self.body();
        self.signatures.iter().any(|line| {
            line.key_name == key.name
                && line.key_id == key.key_id
                && <&[u8; ED25519_SIGNATURE_LEN]>::try_from(line.signature.as_slice())
                    .is_ok_and(|sig| verify_ed25519(&key.public_key, body.as_bytes(), sig))
        })
    }
}

#[cfg(test)]
mod tests;
