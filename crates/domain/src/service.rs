//! Service credentials: the AI providers and platform services whose keys live in the
//! vault (not in environment variables), and the OAuth providers whose client credentials
//! the operator registers.

use std::fmt;
use std::str::FromStr;

use crate::names::shorten;

/// A service with an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Openai,
    Anthropic,
    Gemini,
    Brave,
    Telegram,
}

impl Service {
    pub const ALL: [Service; 5] = [Self::Openai, Self::Anthropic, Self::Gemini, Self::Brave, Self::Telegram];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Brave => "brave",
            Self::Telegram => "telegram",
        }
    }

    /// What kind of service it is, for the settings pages.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Openai | Self::Anthropic | Self::Gemini => "llm_provider",
            Self::Brave => "search",
            Self::Telegram => "messaging",
        }
    }

    /// Whether a workspace may bring its own key.
    pub fn overridable(self) -> bool {
        self != Self::Telegram
    }
}

impl FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            format!(
                "`{}` is not a service: use openai, anthropic, gemini, brave or telegram",
                shorten(s)
            )
        })
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth provider whose client credentials the operator registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OAuthProvider {
    Gmail,
    Github,
}

impl OAuthProvider {
    pub const ALL: [OAuthProvider; 2] = [Self::Gmail, Self::Github];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gmail => "gmail",
            Self::Github => "github",
        }
    }

    /// A person-readable name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Gmail => "Google (Gmail)",
            Self::Github => "GitHub",
        }
    }

    /// The permission tiers a person chooses from when connecting, each with the scope it
    /// asks for (see docs/api.md).
    pub fn tiers(self) -> &'static [Tier] {
        match self {
            Self::Gmail => &[
                Tier {
                    id: "send",
                    scope: "https://www.googleapis.com/auth/gmail.send",
                    label: "Send email",
                },
                Tier {
                    id: "read",
                    scope: "https://www.googleapis.com/auth/gmail.readonly",
                    label: "Read email",
                },
                Tier {
                    id: "full",
                    scope: "https://mail.google.com/",
                    label: "Full access to the mailbox",
                },
            ],
            Self::Github => &[
                Tier {
                    id: "read",
                    scope: "read:user",
                    label: "Read your profile",
                },
                Tier {
                    id: "repo",
                    scope: "repo",
                    label: "Repositories (public and private)",
                },
                Tier {
                    id: "org",
                    scope: "read:org",
                    label: "Read organizations and teams",
                },
            ],
        }
    }

    /// Scopes asked for on every connect besides the tiers' (Google: the account's e-mail
    /// address comes in the OpenID Connect id token).
    pub fn identity_scopes(self) -> &'static [&'static str] {
        match self {
            Self::Gmail => &["openid", "email"],
            Self::Github => &[],
        }
    }

    /// The scopes for these tiers, identity scopes first; an unknown tier is an error
    /// naming it and the known ones.
    pub fn scopes_for(self, tiers: &[String]) -> Result<Vec<&'static str>, String> {
        let mut out: Vec<&'static str> = self.identity_scopes().to_vec();
        for t in tiers {
            let tier = self.tiers().iter().find(|x| x.id == t).ok_or_else(|| {
                let known: Vec<_> = self.tiers().iter().map(|x| x.id).collect();
                format!(
                    "`{}` is not a {} tier: use {}",
                    shorten(t),
                    self.as_str(),
                    known.join(", ")
                )
            })?;
            if !out.contains(&tier.scope) {
                out.push(tier.scope);
            }
        }
        Ok(out)
    }

    /// The tiers that these granted scopes give (GitHub separates scopes with commas,
    /// everyone else with spaces).
    pub fn tiers_granted(self, scopes: &str) -> Vec<&'static str> {
        let granted: Vec<&str> = split_scopes(scopes).collect();
        self.tiers()
            .iter()
            .filter(|t| granted.contains(&t.scope))
            .map(|t| t.id)
            .collect()
    }

    /// The provider's own endpoints, used unless the registry entry overrides them.
    pub fn default_endpoints(self) -> Endpoints {
        match self {
            Self::Gmail => Endpoints {
                authorize_url: "https://accounts.google.com/o/oauth2/v2/auth",
                token_url: "https://oauth2.googleapis.com/token",
                revoke_url: Some("https://oauth2.googleapis.com/revoke"),
                api_base_url: "https://gmail.googleapis.com",
            },
            Self::Github => Endpoints {
                authorize_url: "https://github.com/login/oauth/authorize",
                token_url: "https://github.com/login/oauth/access_token",
                revoke_url: None,
                api_base_url: "https://api.github.com",
            },
        }
    }

    /// The environment variables read when the registry has nothing:
    /// `CONNECT_<ID>_CLIENT_ID` and `CONNECT_<ID>_CLIENT_SECRET`.
    pub fn env_names(self) -> (String, String) {
        let id = self.as_str().to_ascii_uppercase();
        (format!("CONNECT_{id}_CLIENT_ID"), format!("CONNECT_{id}_CLIENT_SECRET"))
    }
}

/// Scopes as a provider writes them: separated by spaces or commas.
pub fn split_scopes(scopes: &str) -> impl Iterator<Item = &str> {
    scopes.split([' ', ',']).map(str::trim).filter(|s| !s.is_empty())
}

/// A permission tier: what a person grants, and the scope asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub id: &'static str,
    pub scope: &'static str,
    pub label: &'static str,
}

/// A provider's endpoints. GitHub has no RFC 7009 revocation endpoint: its grants are
/// revoked through its API (`DELETE /applications/{client_id}/grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub authorize_url: &'static str,
    pub token_url: &'static str,
    pub revoke_url: Option<&'static str>,
    pub api_base_url: &'static str,
}

/// The scopes that allow each built-in Gmail operation (Google's discovery document lists
/// more; these are the ones the tiers grant, plus `gmail.modify` and `gmail.compose`).
pub fn gmail_operation_scopes(operation: &str) -> Option<&'static [&'static str]> {
    const SEND: &[&str] = &[
        "https://www.googleapis.com/auth/gmail.send",
        "https://www.googleapis.com/auth/gmail.compose",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://mail.google.com/",
    ];
    const READ: &[&str] = &[
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://mail.google.com/",
    ];
    match operation {
        "send_email" => Some(SEND),
        "list_messages" | "get_message" => Some(READ),
        _ => None,
    }
}

impl FromStr for OAuthProvider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("`{}` is not an OAuth provider: use gmail or github", shorten(s)))
    }
}

impl fmt::Display for OAuthProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_telegram_is_platform_only() {
        for s in Service::ALL {
            assert_eq!(s.as_str().parse::<Service>().unwrap(), s);
            assert_eq!(s.overridable(), s != Service::Telegram);
        }
        assert!("OpenAI".parse::<Service>().is_err());
        assert_eq!(OAuthProvider::Gmail.env_names().0, "CONNECT_GMAIL_CLIENT_ID");
        assert!("google".parse::<OAuthProvider>().is_err());
    }

    #[test]
    fn tiers_map_to_scopes_and_back() {
        let g = OAuthProvider::Gmail;
        let scopes = g.scopes_for(&["send".into(), "read".into(), "send".into()]).unwrap();
        assert_eq!(
            scopes,
            [
                "openid",
                "email",
                "https://www.googleapis.com/auth/gmail.send",
                "https://www.googleapis.com/auth/gmail.readonly"
            ]
        );
        assert!(
            g.scopes_for(&["write".into()])
                .unwrap_err()
                .contains("send, read, full")
        );
        assert_eq!(
            g.tiers_granted("openid https://www.googleapis.com/auth/gmail.readonly"),
            ["read"]
        );
        assert_eq!(OAuthProvider::Github.tiers_granted("repo,read:user"), ["read", "repo"]);
        assert!(OAuthProvider::Github.tiers_granted("").is_empty());
        assert!(
            gmail_operation_scopes("send_email")
                .unwrap()
                .contains(&"https://mail.google.com/")
        );
        assert!(
            !gmail_operation_scopes("get_message")
                .unwrap()
                .contains(&"https://www.googleapis.com/auth/gmail.send")
        );
    }
}
