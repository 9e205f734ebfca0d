//! Container ids: they name directories and cgroups, so they must be one
//! safe path component.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("container id is empty")]
    Empty,
    #[error("container id `{0}` is longer than 1024 bytes")]
    TooLong(String),
    #[error("container id `{0}` may not be `.` or `..`")]
    Dots(String),
    #[error(
        "container id `{id}` contains `{ch}`: only letters, digits, `_`, `-`, `.` and `+` are allowed"
    )]
    BadChar { id: String, ch: char },
}

/// Checks that `id` can name a state directory and a cgroup.
pub fn check(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > 1024 {
        return Err(IdError::TooLong(id.to_owned()));
    }
    if id == "." || id == ".." {
        return Err(IdError::Dots(id.to_owned()));
    }
    if let Some(ch) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+')))
    {
        return Err(IdError::BadChar {
            id: id.to_owned(),
            ch,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in ["a", "web-1", "x_y.z+1", "0123456789abcdef"] {
            assert_eq!(check(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn rejects_paths_and_junk() {
        assert_eq!(check(""), Err(IdError::Empty));
        assert_eq!(check(".."), Err(IdError::Dots("..".into())));
        assert!(matches!(
            check("a/b"),
            Err(IdError::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            check("a b"),
            Err(IdError::BadChar { ch: ' ', .. })
        ));
        assert!(check(&"x".repeat(1025)).is_err());
    }
}
