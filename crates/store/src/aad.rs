//! The associated data that binds each sealed value to the row that owns it. The vault
//! seals with it and the store's rotation re-derives it; both go through these functions.

/// Associated data of a connection's sealed credentials.
pub fn connection_auth(connection_id: &str) -> Vec<u8> {
    format!("chatterfly:connection:{connection_id}:auth").into_bytes()
}

/// Associated data of the database's vault sentinel.
pub fn vault_check(id: &str) -> Vec<u8> {
    format!("chatterfly:vault_check:{id}").into_bytes()
}

/// Associated data of a service key; `id` is `<scope>:<service>`.
pub fn service_credential(id: &str) -> Vec<u8> {
    format!("chatterfly:service_credential:{id}").into_bytes()
}

/// Associated data of an OAuth client secret; `id` is the provider (`gmail`, `github`).
pub fn oauth_client(id: &str) -> Vec<u8> {
    format!("chatterfly:oauth_provider:{id}").into_bytes()
}

/// Associated data of an account's tokens; `id` is the account's row id.
pub fn account_tokens(id: &str) -> Vec<u8> {
    format!("chatterfly:account:{id}:tokens").into_bytes()
}

/// Associated data of a connect flow's PKCE verifier; `id` is the state's hash.
pub fn oauth_state(id: &str) -> Vec<u8> {
    format!("chatterfly:oauth_state:{id}").into_bytes()
}

/// Associated data of a person's key for a connection; `id` is '<user id>:<connection id>'.
pub fn personal_credentials(id: &str) -> Vec<u8> {
    format!("chatterfly:personal_credentials:{id}").into_bytes()
}

/// Associated data of a participant's key for a connection; `id` is '<participant
/// id>:<connection id>'.
pub fn participant_credentials(id: &str) -> Vec<u8> {
    format!("chatterfly:participant_credentials:{id}").into_bytes()
}

/// Associated data of a workflow run's `caller` credentials; `id` is the run's id.
pub fn workflow_run_credentials(id: &str) -> Vec<u8> {
    format!("chatterfly:workflow_run:{id}:credentials").into_bytes()
}
