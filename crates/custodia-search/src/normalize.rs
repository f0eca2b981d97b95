//! Normalization of text into search tokens, shared by indexing and querying so that spellings of
//! the same word ("Müller", "MULLER", "muller") meet in the same keyed term.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::TextField;

/// Longest token kept, in characters; longer runs are truncated to this length, at indexing and
/// at query time alike, so they still match each other.
pub const MAX_TOKEN_CHARS: usize = 64;

/// Most tokens indexed per text field of one document; further tokens of that field are dropped.
pub const MAX_TOKENS_PER_FIELD: usize = 512;

/// Longest prefix indexed for type-ahead, in characters. A query word longer than this matches
/// by prefix on its first `MAX_PREFIX_CHARS` characters only.
pub const MAX_PREFIX_CHARS: usize = 16;

/// Most words of a query that take part in matching; further words are ignored.
pub const MAX_QUERY_WORDS: usize = 16;

/// Splits `text` into normalized tokens.
///
/// Each character is decomposed (NFKD), combining marks are dropped, the rest is lower-cased and
/// a few letters that NFKD leaves alone are folded to their usual Latin spelling (ß → ss,
/// æ → ae, ø → o, ł → l, đ → d, …). Tokens are the maximal runs of alphanumeric characters
/// (in any script); everything else separates them. Tokens are truncated to
/// [`MAX_TOKEN_CHARS`]; there are no empty tokens.
///
/// ```
/// use custodia_search::normalize::tokens;
/// assert_eq!(tokens("José García-Müller"), ["jose", "garcia", "muller"]);
/// assert_eq!(tokens("STRAẞE"), ["strasse"]);
/// ```
pub fn tokens(text: &str) -> Vec<String> {
    let mut builder = TokenBuilder::default();
    for decomposed in text.nfkd() {
        if is_combining_mark(decomposed) {
            continue;
        }
        for lower in decomposed.to_lowercase() {
            if is_combining_mark(lower) {
                continue;
            }
            match fold(lower) {
                Some(folded) => folded.chars().for_each(|c| builder.push(c)),
                None if lower.is_alphanumeric() => builder.push(lower),
                None => builder.finish_token(),
            }
        }
    }
    builder.finish()
}

/// The tokens indexed for one value of a text field: [`tokens`] of the value, plus, for a phone
/// number written in several groups, all its groups joined ("+49 30 1234-5678" also gives
/// "493012345678"), so that the number can be found however it was grouped.
pub fn field_tokens(field: TextField, text: &str) -> Vec<String> {
    let mut out = tokens(text);
    if field == TextField::Phone && out.len() > 1 {
        let joined: String = out.concat().chars().take(MAX_TOKEN_CHARS).collect();
        out.push(joined);
    }
    out
}

/// The words of a query: [`tokens`] of the text, at most [`MAX_QUERY_WORDS`] of them.
pub fn query_words(text: &str) -> Vec<String> {
    let mut words = tokens(text);
    words.truncate(MAX_QUERY_WORDS);
    words
}

/// The type-ahead prefixes indexed for `token`: its first 1, 2, … characters, up to one character
/// short of the whole token and at most [`MAX_PREFIX_CHARS`] long.
pub fn prefixes(token: &str) -> impl Iterator<Item = &str> {
    let n_chars = token.chars().count();
    let n_prefixes = n_chars.saturating_sub(1).min(MAX_PREFIX_CHARS);
    token
        .char_indices()
        .skip(1)
        .map(|(byte_idx, _)| byte_idx)
        .take(n_prefixes)
        .map(move |end| &token[..end])
}

/// The prefix under which a query word is looked up as the start of a longer token: the word
/// itself, or its first [`MAX_PREFIX_CHARS`] characters if it is longer.
pub fn query_prefix(word: &str) -> &str {
    match word.char_indices().nth(MAX_PREFIX_CHARS) {
        Some((byte_idx, _)) => &word[..byte_idx],
        None => word,
    }
}

/// Whether a query word matches `token` as the last word of a query: the whole token, or (for
/// type-ahead) the start of a longer token, compared on [`query_prefix`].
///
/// This is the rule the index implements with its prefix terms, written out over plaintext; the
/// tests compare the index against it.
pub fn last_word_matches(word: &str, token: &str) -> bool {
    if word == token {
        return true;
    }
    let prefix = query_prefix(word);
    token.starts_with(prefix) && token.chars().count() > prefix.chars().count()
}

/// Letters that NFKD does not decompose but that people write without their stroke or ligature.
/// Takes a lower-case character.
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'ø' => "o",
        'ł' => "l",
        'đ' | 'ð' => "d",
        'þ' => "th",
        'ı' => "i",
        'ħ' => "h",
        'ŧ' => "t",
        'ƶ' => "z",
        // Greek final sigma is the same letter as σ.
        'ς' => "σ",
        _ => return None,
    })
}

/// Accumulates characters into tokens, truncating each at [`MAX_TOKEN_CHARS`].
#[derive(Default)]
struct TokenBuilder {
    tokens: Vec<String>,
    current: String,
    current_chars: usize,
}

impl TokenBuilder {
    fn push(&mut self, c: char) {
        if self.current_chars < MAX_TOKEN_CHARS {
            self.current.push(c);
            self.current_chars += 1;
        }
    }

    fn finish_token(&mut self) {
        if !self.current.is_empty() {
            self.tokens.push(std::mem::take(&mut self.current));
            self.current_chars = 0;
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.finish_token();
        self.tokens
    }
}
