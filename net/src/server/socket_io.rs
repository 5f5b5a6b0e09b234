//! Reading request frames from a connection and writing its responses,
//! with as few system calls and copies as the traffic allows.
//!
//! Reads: small frames arrive through one receive buffer per connection
//! (allocated once, so never zero-filled again); one `recv` takes as many
//! frames as the client has sent, and each frame is copied out at its exact
//! size (its bytes may stay in the tail cache, so it must not pin the
//! buffer). A frame larger than the buffer is received straight into its
//! own allocation, uninitialised, by `recv(2)` on the socket; glommio's read
//! is only what waits when the socket is empty.
//!
//! Writes: responses that are ready together leave in one `sendmsg(2)` of
//! their buffers as they are (no copy into a joined frame); glommio's write
//! is only what waits when the socket's send buffer is full.
//!
//! Over TLS the socket carries records, not frames: reads and writes go
//! through rustls (the frames are copied into records and out of them),
//! and the system-call fast paths are off.

use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::net::TcpStream;

use crate::frame::SIZE_PREFIX_BYTES;

/// Bytes of each connection's receive buffer: frames up to this size
/// (prefix included) are read through it.
pub(super) const RECEIVE_BUFFER_BYTES: usize = 16 * 1024;

/// At most this many buffers go into one `sendmsg` (Linux's `UIO_MAXIOV`
/// is 1024).
const IOVECS_MAX: usize = 256;

/// What the reader found instead of a frame.
#[derive(Debug)]
pub(super) enum ReadEnd {
    /// The client closed the connection between frames.
    Closed,
    /// The socket failed, or closed in the middle of a frame.
    Failed(io::Error),
}

fn closed_mid_frame() -> ReadEnd {
    ReadEnd::Failed(io::ErrorKind::UnexpectedEof.into())
}

/// A range of the receive buffer outside it: a bug here, not the client's.
fn out_of_bounds() -> ReadEnd {
    ReadEnd::Failed(io::Error::other("receive buffer range out of bounds"))
}

/// A connection's byte stream: the socket, or TLS over it (as the server
/// of a connection accepted, or the client of one this broker opened to
/// another).
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::server::TlsStream<TcpStream>>),
    TlsClient(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// The socket, for the fast paths' system calls: none over TLS.
    pub(super) fn plain_fd(&self) -> Option<RawFd> {
        use std::os::fd::AsRawFd;
        match self {
            Stream::Plain(stream) => Some(stream.as_raw_fd()),
            Stream::Tls(_) | Stream::TlsClient(_) => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            Stream::TlsClient(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            Stream::TlsClient(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            Stream::TlsClient(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_close(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_close(cx),
            Stream::TlsClient(stream) => Pin::new(stream.as_mut()).poll_close(cx),
        }
    }
}

/// Reads size-prefixed frames from one connection.
pub(super) struct FrameReader {
    reader: ReadHalf<Stream>,
    /// The socket when it carries the frames themselves (not TLS).
    fd: Option<RawFd>,
    buffer: Box<[u8]>,
    /// What of `buffer` is received and not yet taken.
    start: usize,
    end: usize,
}

impl FrameReader {
    pub(super) fn new(reader: ReadHalf<Stream>, fd: Option<RawFd>) -> FrameReader {
        FrameReader {
            reader,
            fd,
            buffer: vec![0u8; RECEIVE_BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// `len` received bytes from `skip` past `start`.
    fn received(&self, skip: usize, len: usize) -> Result<&[u8], ReadEnd> {
        let from = self.start + skip;
        self.buffer
            .get(from..from + len)
            .filter(|_| from + len <= self.end)
            .ok_or_else(out_of_bounds)
    }

    /// The next frame's size prefix (the 4 bytes stay until
    /// [`FrameReader::frame`] takes the frame).
    pub(super) async fn prefix(&mut self) -> Result<[u8; SIZE_PREFIX_BYTES], ReadEnd> {
        while self.buffered() < SIZE_PREFIX_BYTES {
            let mid_frame = self.buffered() > 0;
            self.fill(SIZE_PREFIX_BYTES, mid_frame).await?;
        }
        let mut prefix = [0u8; SIZE_PREFIX_BYTES];
        prefix.copy_from_slice(self.received(0, SIZE_PREFIX_BYTES)?);
        Ok(prefix)
    }

    /// The body of the frame whose prefix [`FrameReader::prefix`] returned
    /// (`size` bytes, checked by the caller).
    pub(super) async fn frame(&mut self, size: usize) -> Result<Bytes, ReadEnd> {
        let whole = SIZE_PREFIX_BYTES + size;
        if whole > self.buffer.len() {
            return self.large_frame(size).await;
        }
        while self.buffered() < whole {
            self.fill(whole, true).await?;
        }
        let frame = Bytes::copy_from_slice(self.received(SIZE_PREFIX_BYTES, size)?);
        self.start += whole;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(frame)
    }

    /// Receives into the buffer (at least one byte), first moving what is
    /// there to its front if `want` bytes from `start` would not fit.
    async fn fill(&mut self, want: usize, mid_frame: bool) -> Result<(), ReadEnd> {
        if self.start + want > self.buffer.len() {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let free = self.buffer.get_mut(self.end..).ok_or_else(out_of_bounds)?;
        let received = self.reader.read(free).await.map_err(ReadEnd::Failed)?;
        if received == 0 {
            return Err(if mid_frame {
                closed_mid_frame()
            } else {
                ReadEnd::Closed
            });
        }
        self.end += received;
        Ok(())
    }

    /// A frame larger than the buffer: what the buffer holds of it is
    /// copied, the rest received into the frame's own allocation.
    async fn large_frame(&mut self, size: usize) -> Result<Bytes, ReadEnd> {
        let mut frame = BytesMut::with_capacity(size);
        let have = (self.buffered() - SIZE_PREFIX_BYTES).min(size);
        frame.extend_from_slice(self.received(SIZE_PREFIX_BYTES, have)?);
        // The buffer held less than the frame: all of it was this frame's.
        self.start = 0;
        self.end = 0;
        while frame.len() < size {
            let wanted = size - frame.len();
            let received = match self.fd {
                Some(fd) => recv_into_spare(fd, &mut frame, wanted),
                None => Ok(None),
            };
            match received {
                Ok(Some(0)) => return Err(closed_mid_frame()),
                Ok(Some(_)) => {}
                Ok(None) => {
                    // Nothing to receive: wait through glommio, into the
                    // buffer, and move what came (at most a buffer's worth).
                    let into = self
                        .buffer
                        .get_mut(..wanted.min(RECEIVE_BUFFER_BYTES))
                        .ok_or_else(out_of_bounds)?;
                    let received = self.reader.read(into).await.map_err(ReadEnd::Failed)?;
                    if received == 0 {
                        return Err(closed_mid_frame());
                    }
                    frame.extend_from_slice(self.buffer.get(..received).ok_or_else(out_of_bounds)?);
                }
                Err(e) => return Err(ReadEnd::Failed(e)),
            }
        }
        Ok(frame.freeze())
    }
}

/// One non-blocking `recv` of at most `wanted` bytes into `frame`'s spare
/// capacity (which holds at least that). `None`: nothing to receive now.
fn recv_into_spare(fd: RawFd, frame: &mut BytesMut, wanted: usize) -> io::Result<Option<usize>> {
    let spare = frame.spare_capacity_mut();
    let len = wanted.min(spare.len());
    // SAFETY: recv writes at most `len` bytes into memory this BytesMut
    // owns and has not initialised; only what it wrote is then counted as
    // initialised.
    let received = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), len, libc::MSG_DONTWAIT) };
    if received < 0 {
        let error = io::Error::last_os_error();
        return match error.kind() {
            // Interrupted: glommio's read, which waits, tries again.
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(error),
        };
    }
    let received = received as usize;
    // SAFETY: the kernel initialised `received` (<= `len`) bytes past the
    // length.
    unsafe { frame.set_len(frame.len() + received) };
    Ok(Some(received))
}

/// Writes responses, several at a time when several are ready.
pub(super) struct ResponseWriter {
    writer: WriteHalf<Stream>,
    /// The socket when it carries the frames themselves (not TLS).
    fd: Option<RawFd>,
}

impl ResponseWriter {
    pub(super) fn new(writer: WriteHalf<Stream>, fd: Option<RawFd>) -> ResponseWriter {
        ResponseWriter { writer, fd }
    }

    /// Writes every buffer of `frames`, in order.
    pub(super) async fn write_all(&mut self, frames: &[Bytes]) -> io::Result<()> {
        let Some(fd) = self.fd else {
            // TLS: into records (rustls buffers them), then out.
            for frame in frames {
                self.writer.write_all(frame).await?;
            }
            return self.writer.flush().await;
        };
        let mut left: std::collections::VecDeque<&[u8]> = frames
            .iter()
            .map(|f| &f[..])
            .filter(|f| !f.is_empty())
            .collect();
        while let Some(&first) = left.front() {
            match send_vectored(fd, left.iter().take(IOVECS_MAX))? {
                Some(mut sent) => {
                    while let Some(&buffer) = left.front() {
                        if sent < buffer.len() {
                            if let (Some(rest), Some(front)) =
                                (buffer.get(sent..), left.front_mut())
                            {
                                *front = rest;
                            }
                            break;
                        }
                        sent -= buffer.len();
                        left.pop_front();
                    }
                }
                None => {
                    // The send buffer is full: glommio waits for room and
                    // writes what is left of the first buffer.
                    self.writer.write_all(first).await?;
                    left.pop_front();
                }
            }
        }
        Ok(())
    }

    pub(super) async fn close(&mut self) -> io::Result<()> {
        self.writer.close().await
    }
}

/// One non-blocking `sendmsg` of `buffers`. `None`: no room now.
fn send_vectored<'a>(
    fd: RawFd,
    buffers: impl Iterator<Item = &'a &'a [u8]>,
) -> io::Result<Option<usize>> {
    let iovecs: Vec<libc::iovec> = buffers
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: a zeroed msghdr is valid (no address, no control data); the
    // iovecs point into buffers borrowed for the duration of the call.
    let sent = unsafe {
        let mut message: libc::msghdr = std::mem::zeroed();
        message.msg_iov = iovecs.as_ptr() as *mut libc::iovec;
        message.msg_iovlen = iovecs.len() as _;
        libc::sendmsg(fd, &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        let error = io::Error::last_os_error();
        return match error.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            io::ErrorKind::Interrupted => Ok(Some(0)),
            _ => Err(error),
        };
    }
    Ok(Some(sent as usize))
}

#[cfg(test)]
mod tests {
    use glommio::net::TcpListener;

    use super::*;

    /// xorshift64*: deterministic chunking from a printed seed.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Frames of every size class (tiny, around the receive buffer, far
    /// larger) sent in chunks cut anywhere (inside prefixes too, several
    /// frames per chunk), then responses of many buffers written back:
    /// every byte arrives, in order, on both sides.
    #[test]
    fn frames_cut_anywhere_arrive_whole_and_responses_leave_whole() {
        let seed = 0x5eed_1234_u64;
        println!("seed {seed:#x}");
        engine::rt::run_on_executor("socket-io", None, move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let address = listener.local_addr().unwrap();
            let sizes: Vec<usize> = vec![
                1,
                7,
                RECEIVE_BUFFER_BYTES - SIZE_PREFIX_BYTES - 1,
                RECEIVE_BUFFER_BYTES - SIZE_PREFIX_BYTES,
                RECEIVE_BUFFER_BYTES - SIZE_PREFIX_BYTES + 1,
                100,
                3 * RECEIVE_BUFFER_BYTES + 17,
                2,
                1 << 20,
                5000,
            ];
            let frames: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (0..n).map(|b| (b * 31 + i * 7) as u8).collect())
                .collect();
            let mut wire = Vec::new();
            for frame in &frames {
                wire.extend_from_slice(&(frame.len() as i32).to_be_bytes());
                wire.extend_from_slice(frame);
            }
            let expected_back: Vec<u8> = frames.iter().flatten().copied().collect();
            let client = glommio::spawn_local(async move {
                let mut stream = glommio::net::TcpStream::connect(address).await.unwrap();
                let mut state = seed;
                let mut at = 0;
                while at < wire.len() {
                    let chunk = 1 + (next(&mut state) % 40_000) as usize;
                    let end = (at + chunk).min(wire.len());
                    stream.write_all(&wire[at..end]).await.unwrap();
                    at = end;
                }
                let mut back = vec![0u8; expected_back.len()];
                stream.read_exact(&mut back).await.unwrap();
                assert!(back == expected_back, "responses arrived changed");
            });
            let stream = Stream::Plain(listener.accept().await.unwrap());
            let fd = stream.plain_fd();
            let (reader, writer) = stream.split();
            let mut reader = FrameReader::new(reader, fd);
            let mut writer = ResponseWriter::new(writer, fd);
            let mut received = Vec::new();
            for (i, frame) in frames.iter().enumerate() {
                let prefix = reader.prefix().await.unwrap();
                let size = i32::from_be_bytes(prefix) as usize;
                assert_eq!(size, frame.len(), "frame {i}'s size");
                let body = reader.frame(size).await.unwrap();
                assert!(body[..] == frame[..], "frame {i} arrived changed");
                received.push(body);
            }
            // Back as many small buffers and a few large ones in one call.
            let mut buffers: Vec<Bytes> = Vec::new();
            for body in &received {
                let mut at = 0;
                while at < body.len() {
                    let len = (body.len() - at).min(1 + at % 700);
                    buffers.push(body.slice(at..at + len));
                    at += len;
                }
            }
            writer.write_all(&buffers).await.unwrap();
            client.await;
        })
        .unwrap();
    }
}
