//! OpenAPI import: any OpenAPI 3.0 / 3.1 or Swagger 2.0 document, JSON or YAML, becomes a
//! draft `openapi` connection (the create endpoint's shape) and a list of warnings.
//!
//! - [`doc`] loads the text into a compact tree (depth and alias-expansion caps, positions
//!   in errors).
//! - [`schema`] turns schema objects into self-contained JSON Schema 2020-12, built as
//!   [`json::Json`] (ordered vectors, borrowed strings) since most are only written out.
//! - [`import`] works out the base URL, the auth and one operation per path × method, each
//!   with one flat input schema and the [`chatterfly_domain::RequestMapping`] that sends
//!   every argument back where the API expects it.
//!
//! Nothing here does IO: external references are reported, never fetched.

pub mod doc;
pub mod import;
pub mod json;
mod names;
pub mod schema;

pub use doc::{Format, MAX_DEPTH, Node, SyntaxError, load};
pub use import::{
    Draft, DraftOperation, ImportError, Importer, METHODS, Options, Summary, import, import_json, max_nodes_for,
};
pub use schema::{Dialect, Warning};
