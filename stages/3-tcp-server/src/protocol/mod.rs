//! Stage 3's wire protocol: framing ([`frame`]), body fields ([`body`]), and
//! the commands ([`command`]). Specified byte by byte in the book's protocol
//! reference chapter.

pub mod body;
pub mod command;
pub mod frame;

pub use body::{BodyError, BodyReader, PutLe};
pub use command::{Request, Response, Status};
pub use frame::{Frame, FrameError};
