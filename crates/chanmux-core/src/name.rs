//! [`GroupName`] and [`ChannelName`]: validated once, cheap to clone.

use std::fmt;
use std::sync::Arc;

/// Longest group or channel name, as in Django Channels.
pub const MAX_NAME_LEN: usize = 100;

/// Why a group or channel name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("a {kind} name cannot be empty")]
    Empty {
        /// `"group"` or `"channel"`.
        kind: &'static str,
    },
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("{kind} name is {len} bytes long; at most {MAX_NAME_LEN} are allowed")]
    TooLong {
        /// `"group"` or `"channel"`.
        kind: &'static str,
        /// The name's length.
        len: usize,
    },
    /// The name has a character other than ASCII letters, digits, `-`, `_` and `.`.
    #[error("{kind} name {name:?} may only hold ASCII letters, digits, '-', '_' and '.'")]
    BadCharacter {
        /// `"group"` or `"channel"`.
        kind: &'static str,
        /// The rejected name.
        name: String,
    },
}

fn validate(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            kind,
            len: name.len(),
        });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !name.chars().all(allowed) {
        return Err(NameError::BadCharacter {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `name`: 1 to 100 ASCII letters, digits, `-`, `_` or `.`.
            ///
            /// # Errors
            ///
            /// A [`NameError`] saying what is wrong.
            pub fn new(name: &str) -> Result<Self, NameError> {
                validate($kind, name)?;
                Ok($name(name.into()))
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $name::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                $name::new(s)
            }
        }

        // Hash and Eq agree with `str`'s (Arc<str> hashes as its text), so
        // maps keyed by names can be searched with a plain `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// The name of a group: consumers join it and anyone can send to all of them.
    GroupName,
    "group"
);

name_type!(
    /// The address of one consumer instance's mailbox on a channel layer.
    ///
    /// Made unique by the layer that creates it; pass it to others (in a
    /// message, say) so they can [`send`](crate::ChannelLayer::send) to it.
    ChannelName,
    "channel"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_channels_rules() {
        assert!(GroupName::new("room-1_a.b").is_ok());
        assert!(GroupName::new(&"a".repeat(100)).is_ok());
        assert_eq!(GroupName::new(""), Err(NameError::Empty { kind: "group" }));
        assert!(matches!(
            GroupName::new(&"a".repeat(101)),
            Err(NameError::TooLong { len: 101, .. })
        ));
        for bad in ["room 1", "room/1", "é", "a:b", "a!b"] {
            let err = GroupName::new(bad).unwrap_err();
            assert!(matches!(err, NameError::BadCharacter { .. }), "{bad}");
            assert!(err.to_string().contains(bad), "{err}");
        }
        assert!(matches!(
            ChannelName::new("x y"),
            Err(NameError::BadCharacter {
                kind: "channel",
                ..
            })
        ));
    }
}
