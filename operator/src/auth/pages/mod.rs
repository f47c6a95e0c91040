//! The web pages, rendered on the server with maud: `/login`, `/reset`, `/invite`, `/account`,
//! `/organisation/users` and `/organisation/sessions`. One small script (`/assets/usher.js`) sends their forms as JSON to the
//! API and shows the answers. A page request without a session goes to `/login` (303); API keys
//! cannot use the pages.

mod account;
pub mod layout;
mod routes;
mod sessions;
mod sign_in;
mod users;

pub use routes::routes;
