//! What server functions send to the browser: plain serialisable views,
//! never storage rows (which carry hashes and sealed secrets).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSummary {
    pub id: String,
    pub name: String,
}

/// Where the visitor stands: is setup done, who are they, what apps they see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub setup_needed: bool,
    pub me: Option<TeammateView>,
    pub apps: Vec<AppSummary>,
}

/// Everything the dashboard frame needs for one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    pub me: TeammateView,
    pub apps: Vec<AppSummary>,
    pub app: AppSummary,
    /// The app's widget requires a signed JWT for identified users (off:
    /// the frame warns on every page of the app).
    pub identity_enforced: bool,
}

/// A new app, with its identity-verification secret shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedApp {
    pub app: AppSummary,
    pub identity_secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub revoked: bool,
}

/// A new API key; the secret is in this answer and nowhere else, ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub secret: String,
}

/// A teammate as the dashboard shows them (also the signed-in teammate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeammateView {
    pub id: String,
    pub name: String,
    pub initials: String,
    pub email: String,
    pub is_owner: bool,
}

/// The settings page of one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSettings {
    pub app: AppSummary,
    pub snippet: String,
    pub keys: Vec<ApiKeyView>,
    pub teammates: Vec<TeammateView>,
    pub can_manage_teammates: bool,
    /// May create and revoke API keys, roll the identity secret and turn
    /// identity verification off (the owner).
    pub can_manage_secrets: bool,
    /// The app's limit on active whispers (None: unlimited).
    pub max_active_whispers: Option<i64>,
    /// The widget requires a signed JWT for identified users.
    pub identity_enforced: bool,
    /// Custom properties the widget may not set and events it may not
    /// track (only the backend may, through the REST API).
    pub server_only_properties: Vec<String>,
    pub server_only_events: Vec<String>,
    /// Office hours, with whether the team is open now.
    pub office: OfficeHoursView,
    /// Email (SMTP) settings.
    pub smtp: SmtpView,
    /// Web Push settings.
    pub push: PushView,
}

/// A property the condition builder offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyView {
    pub name: String,
    pub ty: crate::domain::properties::PropType,
    pub builtin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: String,
    pub user_id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub signed_up_at: i64,
    pub last_seen_at: Option<i64>,
}

/// One page of the users list, with the live count of all matching users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersPage {
    pub users: Vec<UserSummary>,
    pub matching: i64,
    /// Cursor of the next page, if there is one.
    pub next: Option<String>,
    pub properties: Vec<PropertyView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyValue {
    pub name: String,
    pub ty: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserProfile {
    pub id: String,
    pub user_id: Option<String>,
    pub name: String,
    pub builtin: Vec<PropertyValue>,
    pub custom: Vec<PropertyValue>,
    /// (event name, time in ms, properties as JSON text), newest first.
    pub events: Vec<(String, i64, Option<String>)>,
    /// The conversation, oldest first: the last 50 messages and the last
    /// 50 whisper cards, in the order they were made.
    pub messages: Vec<MessageView>,
    /// Manual messages received (sent ones only, never pending), newest
    /// first: (message id, title, kind, delivery state, sent at).
    pub manual: Vec<(String, String, String, String, i64)>,
    /// The user's conversations, newest activity first.
    #[serde(default)]
    pub conversations: Vec<ConversationSummary>,
}

/// A whisper card in a user's conversation, as the team sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardView {
    /// The whisper's name (it may have been deleted since).
    pub whisper: String,
    /// `pending` (not shown to the user yet), `sent`, `seen`, `clicked`, `replied`.
    pub state: String,
    pub sender: String,
    /// The card's body: the sanitised HTML the template engine rendered.
    pub html: String,
}

/// One message of a conversation, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// True when the user wrote it; false for the team.
    pub from_user: bool,
    pub name: Option<String>,
    pub text: String,
    pub at: i64,
    /// A whisper card rather than a message (then `text` is empty).
    #[serde(default)]
    pub card: Option<CardView>,
}

/// What the app's users have: properties (name, type, users who have it)
/// and events (name, users who did it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Name, type, users who had it when last counted (`None`: new since).
    pub properties: Vec<(String, String, Option<i64>)>,
    /// Name, users who did it when last counted.
    pub events: Vec<(String, Option<i64>)>,
    /// When the counts were made, as the panel says it.
    pub counted: String,
}

/// A row of the whispers list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhisperSummary {
    pub id: String,
    pub name: String,
    pub status: String,
    pub trigger: String,
    pub audience: String,
    pub exposed: i64,
    pub seen: i64,
    pub clicked: i64,
    pub replied: i64,
    pub updated_at: i64,
}

/// What the whisper editor edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhisperEditor {
    /// None for a whisper not saved yet.
    pub id: Option<String>,
    pub status: String,
    pub draft: crate::domain::whisper::WhisperDraft,
    pub teammates: Vec<TeammateView>,
    pub properties: Vec<PropertyView>,
    pub events: Vec<String>,
}

/// A user the preview can be personalised with: their property values as
/// text, by property name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleUser {
    pub id: String,
    pub name: String,
    pub values: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudiencePreview {
    pub count: i64,
    pub samples: Vec<SampleUser>,
    /// With dates "N days ago" in the conditions: how many users start
    /// matching in each of the next 7 days as time passes (else empty).
    #[serde(default)]
    pub forecast: Vec<i64>,
}

/// An app's office hours as the settings page shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeHoursView {
    pub hours: crate::domain::office_hours::OfficeHours,
    /// With office hours on: open now?
    pub open_now: Option<bool>,
    /// With office hours on and closed: when the team is back.
    pub back_at: Option<i64>,
    /// Every time zone name the server knows.
    pub time_zones: Vec<String>,
}

/// A manual message in the list, with what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualSummary {
    pub id: String,
    pub title: String,
    pub sender_name: String,
    /// `domain::manual::Kind` as text.
    pub kind: String,
    /// `domain::manual::State` as text.
    pub state: String,
    pub audience: String,
    /// Scheduled for, or sent at (Unix ms).
    pub send_at: Option<i64>,
    pub updated_at: i64,
    /// Fixed when the send started (`None` before).
    pub recipients: Option<i64>,
    pub pending: i64,
    pub sent: i64,
    pub seen: i64,
    pub clicked: i64,
    pub replied: i64,
    pub failed: i64,
    pub cancelled: i64,
}

/// A user named by a selection, as the composer lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserChip {
    pub id: String,
    pub name: String,
}

/// Everything the composer needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualComposer {
    pub id: Option<String>,
    pub state: String,
    pub draft: crate::domain::manual::MessageDraft,
    /// The selected users' names (audience `users`).
    pub selected: Vec<UserChip>,
    pub teammates: Vec<TeammateView>,
    pub properties: Vec<PropertyView>,
    /// Earlier sent messages, for "has not received".
    pub earlier: Vec<(String, String)>,
    /// The app's time zone (scheduling is in it).
    pub time_zone: String,
    /// A scheduled message's time, as `YYYY-MM-DDTHH:MM` in that zone.
    pub send_at_local: String,
    /// Whether the app has SMTP settings (email can be sent).
    pub email_ready: bool,
}

/// One recipient of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientView {
    pub app_user_id: String,
    pub name: String,
    pub state: String,
    pub sent_at: Option<i64>,
    pub error: Option<String>,
}

/// A message's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualDetail {
    pub summary: ManualSummary,
    pub body: String,
    pub recipients: Vec<RecipientView>,
    /// The conversations it started: recipients who replied.
    pub replied_users: Vec<UserChip>,
    /// Those conversations' ids, by user id (for links to the inbox).
    #[serde(default)]
    pub conversations: Vec<(String, String)>,
    pub stoppable: bool,
}

/// An app's email (SMTP) settings as the settings page shows them. The
/// password is never sent: only whether one is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpView {
    /// None: email is off for this app.
    pub settings: Option<crate::domain::email::SmtpSettings>,
    pub password_set: bool,
}

/// A conversation in a list (the inbox, a profile, a teammate's page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub id: String,
    /// The user (murmur's id) and the name the dashboard shows.
    pub user: String,
    pub user_name: String,
    /// `open` or `closed`.
    pub state: String,
    pub assignee_id: Option<String>,
    pub assignee_name: Option<String>,
    /// `user`, `teammate` or `card`.
    pub started_by: String,
    pub last_text: String,
    pub last_activity_at: i64,
    /// The user's messages the team has not read.
    pub unread: i64,
}

/// One page of an inbox list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxPage {
    pub conversations: Vec<ConversationSummary>,
    /// Cursor of the next page, if any.
    pub next: Option<String>,
    /// Open conversations: all, unassigned, assigned to me.
    pub open_counts: (i64, i64, i64),
    /// The signed-in teammate's id.
    pub me: String,
    /// The app's teammates (id, name), to assign to.
    pub teammates: Vec<(String, String)>,
}

/// A conversation as the inbox shows it: its messages (the card that
/// started it first) and the user's profile beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationDetail {
    pub summary: ConversationSummary,
    /// Oldest first. A team message's `card` is None; its `text` is shown
    /// with the light styling (`html`).
    pub items: Vec<ConversationItem>,
    pub profile: UserProfile,
}

/// One item of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationItem {
    pub id: String,
    pub message: MessageView,
    /// A team message's light styling as sanitised HTML (template engine).
    pub html: Option<String>,
}

/// A teammate's page: the conversations they started or are assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeammatePage {
    pub id: String,
    pub name: String,
    pub conversations: Vec<ConversationSummary>,
}

/// An app's Web Push settings (Settings → Push).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushView {
    pub enabled: bool,
    /// The VAPID public key (base64url) once generated.
    pub public_key: Option<String>,
    /// Browsers subscribed in the app.
    pub subscriptions: i64,
    /// May generate keys and switch push (the owner).
    pub can_manage: bool,
    /// The service worker file the customer serves from their site.
    pub service_worker: String,
}

/// The signed-in teammate's account page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub me: TeammateView,
    /// Their live sessions (this one included).
    pub sessions: i64,
}

/// One row of the audit log as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntryView {
    /// Unix ms, from the server's clock.
    pub at: i64,
    pub actor_id: String,
    /// The name the teammate had then (kept after their removal).
    pub actor_name: String,
    /// `domain::audit::AuditAction::code`.
    pub action: String,
    /// What the action was, in words.
    pub label: String,
    /// Names and ids, never a secret.
    pub detail: String,
    /// An action on the whole deployment (a password, sign-ins), not on this app.
    pub deployment_wide: bool,
}

/// One page of an app's audit log, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    /// Cursor of the next (older) page, if any.
    pub next: Option<String>,
}

/// Something the "why?" panel can ask about: a whisper or a manual message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhyChoice {
    /// `whisper` or `message`.
    pub kind: String,
    pub id: String,
    pub label: String,
}

/// Why a user did or did not get a whisper or message
/// (`domain::explain`), for the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The user as the answer names them, and their murmur id.
    pub user: String,
    pub user_id: String,
    /// The whisper's name or the message's title.
    pub subject: String,
    pub answer: crate::domain::explain::Answer,
}
