//! The one login canonicalisation function. A login is an email address; its canonical form is
//! lowercase, Unicode NFC, with an IDNA (punycode) domain and RFC 5321 lengths. The webhook refuses
//! a non-canonical login and shows this form; the controller and the auth server key accounts by it.

use unicode_normalization::UnicodeNormalization;
use unicode_script::{Script, UnicodeScript};

/// A loose email shape the API server itself enforces (no `x-kubernetes-validations` needed), so a
/// login that is not an email is refused even without the webhook. Case and Unicode are left to
/// the webhook, whose message can show the canonical form.
pub const LOGIN_SCHEMA_PATTERN: &str = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$";

/// RFC 5321 limit for a whole address, in octets.
pub const MAX_LOGIN_LEN: usize = 254;
/// RFC 5321 limit for the local part, in octets.
pub const MAX_LOCAL_LEN: usize = 64;

/// Why a login was refused. Messages never echo control or invisible characters raw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Nothing was given.
    #[error("login is empty: write an email address such as alice@example.com")]
    Empty,
    /// Longer than RFC 5321 allows.
    #[error("login is {0} bytes long; an email address has at most 254 (64 before the @)")]
    TooLong(usize),
    /// The local part is longer than RFC 5321 allows.
    #[error("the part before @ is {0} bytes long; at most 64 are allowed")]
    LocalTooLong(usize),
    /// Whitespace anywhere.
    #[error("login contains whitespace; write the bare address such as alice@example.com")]
    Whitespace,
    /// Control, invisible (zero-width) or bidirectional-override characters.
    #[error(
        "login contains an invisible, control or text-direction character (U+{0:04X}); retype the address"
    )]
    Invisible(u32),
    /// A lookalike of `@` such as the fullwidth `＠`.
    #[error("login uses a lookalike of @ (U+{0:04X}); use the ASCII @ as in alice@example.com")]
    LookalikeAt(u32),
    /// A display name (`Alice <alice@example.com>`), comment (`(work)`) or quoted local part.
    #[error(
        "login contains {0:?}: give only the address (no display name, comment or quotes), such as alice@example.com"
    )]
    NotBareAddress(char),
    /// Zero or several `@`.
    #[error("login must contain exactly one @ (found {0})")]
    AtCount(usize),
    /// Local part empty, dot at either end or two dots in a row, or a symbol not allowed there.
    #[error(
        "the part before @ is not valid: it must be letters, digits or !#$%&'*+/=?^_`{{|}}~.- with no dot at either end and no two dots in a row"
    )]
    BadLocalPart,
    /// Letters of lookalike scripts mixed in one part (`аlice` with a Cyrillic `а`).
    #[error(
        "the {0} mixes letters of different scripts (such as Latin and Cyrillic) that look alike; retype it in one script"
    )]
    MixedScript(&'static str),
    /// The domain does not convert to a valid DNS name.
    #[error(
        "the domain after @ is not a valid host name: it needs at least two labels of letters, digits and hyphens, such as example.com, with no trailing dot"
    )]
    BadDomain,
}

/// Returns the canonical form of `input` or says why it is not a usable login.
///
/// Canonical means: Unicode NFC, lowercase, the domain in its IDNA ASCII form (`bücher.de` →
/// `xn--bcher-kva.de`), at most 64 octets before the `@` and 254 in all. Refused: whitespace,
/// control, zero-width and bidi characters, lookalikes of `@`, display names, comments and quoted
/// local parts, more or fewer than one `@`, dots at the ends of the local part or doubled, IP
/// literals, single-label domains and trailing dots.
pub fn canonical_login(input: &str) -> Result<String, LoginError> {
    if input.is_empty() {
        return Err(LoginError::Empty);
    }
    // Bound the work before normalising: NFC can grow a string, but not by much.
    if input.len() > 4 * MAX_LOGIN_LEN {
        return Err(LoginError::TooLong(input.len()));
    }
    for c in input.chars() {
        if c.is_whitespace() {
            return Err(LoginError::Whitespace);
        }
        if c.is_control() || is_invisible(c) {
            return Err(LoginError::Invisible(c.into()));
        }
        if matches!(c, '\u{FF20}' | '\u{FE6B}' | '\u{E0040}') {
            return Err(LoginError::LookalikeAt(c.into()));
        }
        if matches!(
            c,
            '<' | '>' | '(' | ')' | '"' | ',' | ';' | ':' | '[' | ']' | '\\'
        ) {
            return Err(LoginError::NotBareAddress(c));
        }
    }
    let lowered: String = input.nfc().flat_map(char::to_lowercase).nfc().collect();
    let ats = lowered.matches('@').count();
    let Some((local, domain)) = lowered.split_once('@').filter(|_| ats == 1) else {
        return Err(LoginError::AtCount(ats));
    };
    check_local(local)?;
    if mixes_confusable_scripts(local) {
        return Err(LoginError::MixedScript("part before @"));
    }
    let domain = canonical_domain(domain)?;
    let (unicode_domain, _) = idna::domain_to_unicode(&domain);
    if unicode_domain.split('.').any(mixes_confusable_scripts) {
        return Err(LoginError::MixedScript("domain"));
    }
    let login = format!("{local}@{domain}");
    if login.len() > MAX_LOGIN_LEN {
        return Err(LoginError::TooLong(login.len()));
    }
    Ok(login)
}

/// True when `login` is already in canonical form.
pub fn is_canonical(login: &str) -> bool {
    canonical_login(login).is_ok_and(|c| c == login)
}

fn check_local(local: &str) -> Result<(), LoginError> {
    if local.len() > MAX_LOCAL_LEN {
        return Err(LoginError::LocalTooLong(local.len()));
    }
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+/=?^_`{|}~-".contains(c)
            // RFC 6531 allows non-ASCII; only letters and digits, never symbols or marks.
            || (!c.is_ascii() && c.is_alphanumeric())
    };
    let valid = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c == '.' || atext(c));
    if valid {
        Ok(())
    } else {
        Err(LoginError::BadLocalPart)
    }
}

fn canonical_domain(domain: &str) -> Result<String, LoginError> {
    if domain.is_empty() || domain.ends_with('.') {
        return Err(LoginError::BadDomain);
    }
    let ascii = idna::domain_to_ascii_strict(domain).map_err(|_| LoginError::BadDomain)?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let ldh = |l: &&str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let tld_is_numeric = labels
        .last()
        .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()));
    if labels.len() < 2 || !labels.iter().all(ldh) || tld_is_numeric || ascii.len() > 253 {
        return Err(LoginError::BadDomain);
    }
    Ok(ascii)
}

/// True when `s` mixes letters of scripts whose letters are easily confused (UTS #39's classic
/// homoglyph set: Latin, Cyrillic, Greek, Armenian, Cherokee). Other combinations, such as Han
/// with Latin, are allowed.
fn mixes_confusable_scripts(s: &str) -> bool {
    let mut seen: Option<Script> = None;
    for c in s.chars() {
        let script = c.script();
        if !matches!(
            script,
            Script::Latin | Script::Cyrillic | Script::Greek | Script::Armenian | Script::Cherokee
        ) {
            continue;
        }
        match seen {
            Some(first) if first != script => return true,
            _ => seen = Some(script),
        }
    }
    false
}

/// Zero-width, bidi control and other default-ignorable characters a person cannot see.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input, and `Ok(canonical)` or the error variant's name.
    const CASES: &[(&str, Result<&str, &str>)] = &[
        // Valid, already canonical.
        ("alice@example.com", Ok("alice@example.com")),
        ("a@b.co", Ok("a@b.co")),
        ("alice.smith@example.com", Ok("alice.smith@example.com")),
        ("alice+usher@example.com", Ok("alice+usher@example.com")),
        ("o'brien@example.ie", Ok("o'brien@example.ie")),
        ("x_y-z@sub.example.co.uk", Ok("x_y-z@sub.example.co.uk")),
        ("1234@123.example", Ok("1234@123.example")),
        ("alice@xn--bcher-kva.de", Ok("alice@xn--bcher-kva.de")),
        // Valid, canonicalised.
        ("Alice@Example.COM", Ok("alice@example.com")),
        ("ALICE@EXAMPLE.COM", Ok("alice@example.com")),
        ("alice@bücher.de", Ok("alice@xn--bcher-kva.de")),
        ("alice@BÜCHER.de", Ok("alice@xn--bcher-kva.de")),
        ("alice@XN--BCHER-KVA.DE", Ok("alice@xn--bcher-kva.de")),
        ("josé@example.com", Ok("jos\u{e9}@example.com")),
        // NFD input (e + combining acute) composes to NFC.
        ("jose\u{301}@example.com", Ok("jos\u{e9}@example.com")),
        ("ÉLODIE@example.fr", Ok("élodie@example.fr")),
        ("用户@例子.中国", Ok("用户@xn--fsqu00a.xn--fiqs8s")),
        // Fullwidth letters in the domain map to ASCII under IDNA.
        ("bob@ｅｘａｍｐｌｅ.com", Ok("bob@example.com")),
        // Hostile or malformed.
        ("", Err("Empty")),
        ("alice", Err("AtCount")),
        ("alice@@example.com", Err("AtCount")),
        ("alice@bob@example.com", Err("AtCount")),
        ("@example.com", Err("BadLocalPart")),
        ("alice@", Err("BadDomain")),
        ("alice＠example.com", Err("LookalikeAt")),
        ("alice﹫example.com", Err("LookalikeAt")),
        ("Alice <alice@example.com>", Err("Whitespace")),
        ("Alice<alice@example.com>", Err("NotBareAddress")),
        ("alice@example.com(work)", Err("NotBareAddress")),
        ("\"alice smith\"@example.com", Err("NotBareAddress")),
        ("\"alice\"@example.com", Err("NotBareAddress")),
        ("alice,bob@example.com", Err("NotBareAddress")),
        ("alice;@example.com", Err("NotBareAddress")),
        ("alice@[127.0.0.1]", Err("NotBareAddress")),
        ("alice@127.0.0.1", Err("BadDomain")),
        (" alice@example.com", Err("Whitespace")),
        ("alice@example.com ", Err("Whitespace")),
        ("alice@example.com\n", Err("Whitespace")),
        ("alice@example.com\r\nBcc: eve@evil.com", Err("Whitespace")),
        ("alice\u{0}@example.com", Err("Invisible")),
        ("alice\u{7}@example.com", Err("Invisible")),
        ("ali\u{200B}ce@example.com", Err("Invisible")),
        ("alice@exa\u{200D}mple.com", Err("Invisible")),
        ("\u{202E}moc.elpmaxe@ecila", Err("Invisible")),
        ("alice\u{2066}@example.com", Err("Invisible")),
        ("\u{FEFF}alice@example.com", Err("Invisible")),
        ("alice\u{00A0}@example.com", Err("Whitespace")),
        ("alice@example.com.", Err("BadDomain")),
        ("alice@example", Err("BadDomain")),
        ("alice@localhost", Err("BadDomain")),
        ("alice@-example.com", Err("BadDomain")),
        ("alice@example-.com", Err("BadDomain")),
        ("alice@exa_mple.com", Err("BadDomain")),
        ("alice@example..com", Err("BadDomain")),
        ("alice@.example.com", Err("BadDomain")),
        (".alice@example.com", Err("BadLocalPart")),
        ("alice.@example.com", Err("BadLocalPart")),
        ("al..ice@example.com", Err("BadLocalPart")),
        ("al™ice@example.com", Err("BadLocalPart")),
        ("ali\u{301}\u{301}ce@example.com", Err("BadLocalPart")),
        ("alice@xn--zz.com", Err("BadDomain")),
        // Homoglyphs: a Cyrillic а (U+0430) or Greek ο (U+03BF) among Latin letters.
        ("\u{430}lice@example.com", Err("MixedScript")),
        ("alice@ex\u{430}mple.com", Err("MixedScript")),
        ("alice@xn--exmple-4nf.com", Err("MixedScript")),
        ("b\u{3BF}b@example.com", Err("MixedScript")),
        // One script throughout is fine, as is Han with Latin digits.
        (
            "\u{438}\u{432}\u{430}\u{43D}@example.ru",
            Ok("\u{438}\u{432}\u{430}\u{43D}@example.ru"),
        ),
        (
            "\u{3B1}\u{3BB}\u{3AD}\u{3BE}\u{3B7}\u{3C2}@example.gr",
            Ok("\u{3B1}\u{3BB}\u{3AD}\u{3BE}\u{3B7}\u{3C2}@example.gr"),
        ),
    ];

    fn variant(e: &LoginError) -> &'static str {
        match e {
            LoginError::Empty => "Empty",
            LoginError::TooLong(_) => "TooLong",
            LoginError::LocalTooLong(_) => "LocalTooLong",
            LoginError::Whitespace => "Whitespace",
            LoginError::Invisible(_) => "Invisible",
            LoginError::LookalikeAt(_) => "LookalikeAt",
            LoginError::NotBareAddress(_) => "NotBareAddress",
            LoginError::AtCount(_) => "AtCount",
            LoginError::BadLocalPart => "BadLocalPart",
            LoginError::MixedScript(_) => "MixedScript",
            LoginError::BadDomain => "BadDomain",
        }
    }

    #[test]
    fn hostile_and_valid_table() {
        assert!(CASES.len() >= 40);
        let mut failures = Vec::new();
        for (input, want) in CASES {
            let got = canonical_login(input);
            let ok = match (&got, want) {
                (Ok(c), Ok(w)) => c == w,
                (Err(e), Err(w)) => variant(e) == *w,
                _ => false,
            };
            if !ok {
                failures.push(format!("{input:?}: want {want:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn canonical_form_is_a_fixed_point() {
        for (input, want) in CASES {
            if let Ok(canonical) = want {
                assert_eq!(
                    canonical_login(canonical).as_deref(),
                    Ok(*canonical),
                    "{input}"
                );
                assert!(is_canonical(canonical));
            }
        }
        assert!(!is_canonical("Alice@example.com"));
    }

    #[test]
    fn lengths_follow_rfc_5321() {
        let local64 = "a".repeat(64);
        assert!(canonical_login(&format!("{local64}@example.com")).is_ok());
        assert_eq!(
            canonical_login(&format!("a{local64}@example.com")),
            Err(LoginError::LocalTooLong(65))
        );
        // 254 octets in all is the limit: 64 + 1 + 189.
        let domain = format!(
            "{}.{}.{}.com",
            "b".repeat(61),
            "c".repeat(61),
            "d".repeat(61)
        );
        assert_eq!(domain.len(), 189);
        let max = format!("{local64}@{domain}");
        assert_eq!(max.len(), 254);
        assert_eq!(canonical_login(&max).as_deref(), Ok(max.as_str()));
        let over = format!("{local64}@e{domain}");
        assert!(matches!(
            canonical_login(&over),
            Err(LoginError::TooLong(255))
        ));
        // A megabyte is refused before any normalisation work.
        let huge = "a".repeat(1 << 20);
        assert!(matches!(
            canonical_login(&huge),
            Err(LoginError::TooLong(_))
        ));
    }

    #[test]
    fn messages_name_the_fix_and_never_echo_invisible_characters() {
        let e = canonical_login("alice\u{202E}@example.com")
            .unwrap_err()
            .to_string();
        assert!(e.contains("U+202E") && !e.contains('\u{202E}'), "{e}");
        let e = canonical_login("alice＠example.com")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ASCII @"), "{e}");
        let e = canonical_login("Bob <bob@example.com>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("alice@example.com"), "{e}");
    }
}
