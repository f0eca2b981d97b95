//! `LedgerEntry::decode` on arbitrary bytes: it never panics, and whatever it accepts is canonical
//! — it encodes back to exactly the input, passes `validate`, and decodes again to itself.

#![no_main]

use custodia_ledger::LedgerEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = LedgerEntry::decode(data) else {
        return;
    };
    let bytes = entry.encode();
    assert_eq!(bytes, data, "decode accepted non-canonical bytes");
    assert!(entry.validate().is_ok(), "decode accepted an invalid entry");
    assert_eq!(LedgerEntry::decode(&bytes).ok(), Some(entry));
});
