//! A bounded in-memory ring per session behind [`super::Store`]. (in progress)
