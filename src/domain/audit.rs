//! The audit log's vocabulary: what a teammate did, as a short stable code
//! (stored) and a phrase (shown). Also bounds the free-text detail of a row.

use serde::{Deserialize, Serialize};

/// An action the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    ApiKeyCreated,
    ApiKeyRevoked,
    IdentitySecretRolled,
    IdentityRequired,
    IdentityNotRequired,
    TeammateAdded,
    TeammateRemoved,
    ServerOnlyNamesChanged,
    SmtpSaved,
    SmtpCleared,
    PasswordChanged,
    SignedOutEverywhere,
}

impl AuditAction {
    pub const ALL: [AuditAction; 12] = [
        AuditAction::ApiKeyCreated,
        AuditAction::ApiKeyRevoked,
        AuditAction::IdentitySecretRolled,
        AuditAction::IdentityRequired,
        AuditAction::IdentityNotRequired,
        AuditAction::TeammateAdded,
        AuditAction::TeammateRemoved,
        AuditAction::ServerOnlyNamesChanged,
        AuditAction::SmtpSaved,
        AuditAction::SmtpCleared,
        AuditAction::PasswordChanged,
        AuditAction::SignedOutEverywhere,
    ];

    /// The code stored in `audit_log.action`. Never change one: old rows
    /// keep it.
    pub fn code(self) -> &'static str {
        match self {
            AuditAction::ApiKeyCreated => "api_key.created",
            AuditAction::ApiKeyRevoked => "api_key.revoked",
            AuditAction::IdentitySecretRolled => "identity_secret.rolled",
            AuditAction::IdentityRequired => "identity.required",
            AuditAction::IdentityNotRequired => "identity.not_required",
            AuditAction::TeammateAdded => "teammate.added",
            AuditAction::TeammateRemoved => "teammate.removed",
            AuditAction::ServerOnlyNamesChanged => "server_only.changed",
            AuditAction::SmtpSaved => "smtp.saved",
            AuditAction::SmtpCleared => "smtp.cleared",
            AuditAction::PasswordChanged => "password.changed",
            AuditAction::SignedOutEverywhere => "sessions.ended",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.code() == code)
    }

    /// What the dashboard says the teammate did.
    pub fn label(self) -> &'static str {
        match self {
            AuditAction::ApiKeyCreated => "Created an API key",
            AuditAction::ApiKeyRevoked => "Revoked an API key",
            AuditAction::IdentitySecretRolled => "Rolled the identity secret",
            AuditAction::IdentityRequired => "Required identity verification",
            AuditAction::IdentityNotRequired => "Stopped requiring identity verification",
            AuditAction::TeammateAdded => "Added a teammate",
            AuditAction::TeammateRemoved => "Removed a teammate",
            AuditAction::ServerOnlyNamesChanged => "Changed what the widget may set",
            AuditAction::SmtpSaved => "Saved the email (SMTP) settings",
            AuditAction::SmtpCleared => "Turned email off",
            AuditAction::PasswordChanged => "Changed their password",
            AuditAction::SignedOutEverywhere => "Signed out everywhere",
        }
    }
}

/// Longest detail text a row keeps, in characters.
pub const MAX_DETAIL_CHARS: usize = 300;

/// A row's detail, cut to `MAX_DETAIL_CHARS` (with "…" when cut). The
/// caller chooses what goes in: names and ids, never a secret.
pub fn detail(text: &str) -> String {
    if text.chars().count() <= MAX_DETAIL_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_DETAIL_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_read_back() {
        let mut codes: Vec<_> = AuditAction::ALL.iter().map(|a| a.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), AuditAction::ALL.len());
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::from_code(a.code()), Some(a));
        }
        assert_eq!(AuditAction::from_code("nope"), None);
    }

    #[test]
    fn long_details_are_cut() {
        assert_eq!(detail("key (app_1)"), "key (app_1)");
        let long = "é".repeat(MAX_DETAIL_CHARS + 5);
        let cut = detail(&long);
        assert_eq!(cut.chars().count(), MAX_DETAIL_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(detail(&"x".repeat(MAX_DETAIL_CHARS)).chars().count(), MAX_DETAIL_CHARS);
    }
}
