//! Step kinds that speak plain HTTP: `check` (`http.check`), the smoke checks after a
//! rebuild.

mod check;

pub(super) use check::HttpCheck;
