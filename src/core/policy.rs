//! The channel policies a request is checked against by name: `/Channel/Writers` for a
//! broadcast, `/Channel/Readers` for a deliver, `/Channel/Admins`. What each requires is the
//! channel configuration's (see [`super::fabric_policy`]).

use std::fmt;

/// Which of a channel's policies a request is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyName {
    Writers,
    Readers,
    Admins,
}

impl PolicyName {
    /// The policy's path in the channel's configuration.
    pub fn path(self) -> &'static str {
        match self {
            PolicyName::Writers => "/Channel/Writers",
            PolicyName::Readers => "/Channel/Readers",
            PolicyName::Admins => "/Channel/Admins",
        }
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyName::Writers => "Writers",
            PolicyName::Readers => "Readers",
            PolicyName::Admins => "Admins",
        })
    }
}
