//! What the server answers when a request cannot be served.

use crate::protocol::Status;

/// An error response: a status code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status {status}: {message}")]
pub struct ServeError {
    /// The status code sent (a stage's own `Status`, as `u16`).
    pub status: u16,
    /// The message sent, in UTF-8.
    pub message: String,
}

impl ServeError {
    /// The stream does not exist.
    pub fn not_found(id: u32) -> ServeError {
        ServeError {
            status: Status::StreamNotFound.into(),
            message: format!("stream {id} does not exist; create it first"),
        }
    }

    /// The request cannot be served as asked.
    pub fn invalid(message: impl Into<String>) -> ServeError {
        ServeError {
            status: Status::Invalid.into(),
            message: message.into(),
        }
    }

    /// Storage failed.
    pub fn storage(error: impl ToString) -> ServeError {
        ServeError {
            status: Status::Storage.into(),
            message: error.to_string(),
        }
    }

    /// A lock was poisoned by a panic elsewhere.
    pub fn poisoned() -> ServeError {
        ServeError::storage("server state is unusable after an internal panic")
    }
}

impl From<stage2_batching::Error> for ServeError {
    fn from(error: stage2_batching::Error) -> ServeError {
        match error {
            // A too-large record or a full log is the request's fault, not the disk's.
            stage2_batching::Error::Log(
                stage1_file_log::Error::Record(_) | stage1_file_log::Error::LogFull { .. },
            ) => ServeError::invalid(error.to_string()),
            _ => ServeError::storage(error),
        }
    }
}
