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

    /// The environment variables read when the registry has nothing:
    /// `CONNECT_<ID>_CLIENT_ID` and `CONNECT_<ID>_CLIENT_SECRET`.
    pub fn env_names(self) -> (String, String) {
        let id = self.as_str().to_ascii_uppercase();
        (format!("CONNECT_{id}_CLIENT_ID"), format!("CONNECT_{id}_CLIENT_SECRET"))
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
}
