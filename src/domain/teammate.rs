//! Teammates: dashboard accounts. Names, emails and passwords are validated
//! here, once, for the setup form, the add-teammate form and the server.

use super::{parse_name, Invalid};

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// A teammate's display name (also the sender name on messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeammateName(String);

impl TeammateName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        parse_name("name", "a name", raw, 80).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Up to two letters for the avatar: first letters of the first and last words.
    pub fn initials(&self) -> String {
        initials(&self.0)
    }
}

/// Avatar initials for any display name ("Ada Lovelace" → "AL", "cher" → "C").
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let first = words.first().and_then(|w| w.chars().next());
    let last = if words.len() > 1 { words.last().and_then(|w| w.chars().next()) } else { None };
    first.into_iter().chain(last).flat_map(char::to_uppercase).collect()
}

/// An email address, trimmed and lower-cased so that lookups are exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim().to_lowercase();
        let bad = || Invalid::new("email", "Enter an email address like name@example.com.");
        if email.is_empty() {
            return Err(Invalid::new("email", "Enter an email address."));
        }
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain.chars().all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty() || local.contains('@') || !domain_ok {
            return Err(bad());
        }
        Ok(Self(email))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password, checked for length only (long passphrases beat rules).
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let n = raw.chars().count();
        if n == 0 {
            return Err(Invalid::new("password", "Enter a password."));
        }
        if n < MIN_PASSWORD_CHARS {
            return Err(Invalid::new(
                "password",
                format!("Use at least {MIN_PASSWORD_CHARS} characters (this one has {n})."),
            ));
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(Invalid::new("password", format!("Use at most {MAX_PASSWORD_CHARS} characters.")));
        }
        Ok(Self(raw.to_string()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Everything needed to create a teammate, validated together so a form can
/// show every problem at once.
#[derive(Debug, Clone)]
pub struct NewTeammate {
    pub name: TeammateName,
    pub email: Email,
    pub password: NewPassword,
}

impl NewTeammate {
    pub fn parse(name: &str, email: &str, password: &str) -> Result<Self, Vec<Invalid>> {
        let name = TeammateName::parse(name);
        let email = Email::parse(email);
        let password = NewPassword::parse(password);
        match (name, email, password) {
            (Ok(name), Ok(email), Ok(password)) => Ok(Self { name, email, password }),
            (n, e, p) => Err([n.err(), e.err(), p.err()].into_iter().flatten().collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_take_first_and_last_word() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("  grace  brewster murray hopper "), "GH");
        assert_eq!(initials("cher"), "C");
        assert_eq!(initials("élodie durand"), "ÉD");
        assert_eq!(initials(""), "");
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse(" Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@exa..mple.com",
            "ada@.example.com",
            "ada@example.com.",
        ] {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
        }
    }

    #[test]
    fn passwords_need_ten_characters() {
        assert!(NewPassword::parse("short").unwrap_err().message.contains("at least 10"));
        assert!(NewPassword::parse("").unwrap_err().message.contains("Enter a password"));
        assert!(NewPassword::parse("correct horse").is_ok());
        assert!(!format!("{:?}", NewPassword::parse("correct horse").unwrap()).contains("horse"));
    }

    #[test]
    fn names_are_trimmed_and_required() {
        assert_eq!(TeammateName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert_eq!(TeammateName::parse("   ").unwrap_err().message, "Enter a name.");
        assert!(TeammateName::parse(&"x".repeat(81)).is_err());
        assert!(TeammateName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn new_teammate_reports_every_bad_field() {
        let errs = NewTeammate::parse("", "nope", "short").unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "email", "password"]);
    }
}
