//! A minimal PostgreSQL frontend for the backup's data connections: log in, run simple queries,
//! and stream `COPY ... TO STDOUT` straight from the socket into ~1 MiB buffers.
//!
//! Why not sqlx here: the server sends one CopyData message per row, and sqlx's `copy_out_raw`
//! yields each as its own `Bytes` through an async stream (a buffer split, a mutex and a wake-up
//! per row). On pgbench's 90-byte rows that was about 0.9 s of CPU for 465 MB, as much as the
//! server's own COPY on a core it shares with us (shared/notes/performance.md). Here a COPY
//! reads the socket 256 KiB at a time and copies each message's payload into the output buffer:
//! a header check and a `memcpy` per row.
//!
//! During a COPY's data the socket is also taken off the reactor and read when due, or at once
//! while data keeps coming, instead of at every packet's wake-up. The server sends its output
//! 8 KiB at a time, so event-driven reading woke the process about 50,000 times for pgbench's
//! 488 MB (more time switching than copying); polled, about 3,600, and the backup took
//! 1.18-1.33 s instead of 1.44-1.69 s (docs/BENCHMARKS.md, session 6).
//!
//! How often is due depends on what the socket holds between reads. TCP autotunes its receive
//! buffer (`ss -tmi` showed ~2.9 MB during a pgbench COPY), so a read every millisecond (tokio's
//! timer) loses nothing. A Unix socket holds only what the server's send buffer allows
//! (`net.core.wmem_default`, ~200 KiB), which a server writing 250 MB/s fills in under a
//! millisecond: read every millisecond, the server stalled on a full socket (pgbench, one lane,
//! a core to spare: 5.8 s against 4.0-4.7 s event-driven). So Unix sockets are read every
//! [`FINE_TICK`] (0.5 ms), from one thread that wakes the waiting readers (`fine_tick`). Measured
//! in session 8 against event-driven reading: one lane 3.2-3.8 s against 3.6-4.4 s, two lanes
//! 0.82-0.93x of `pg_dump` over the same socket against 0.95-1.2x, our CPU 2.4-2.8 s -> 1.5-1.8 s.
//!
//! Everything else (catalog queries, the snapshot connection, restores) stays on sqlx. The login
//! speaks what sqlx does, from the same options: the URL is parsed by sqlx (so `PG*` variables,
//! `.pgpass`, sockets and `options` mean the same), the same startup parameters are sent, and
//! the password methods are trust, cleartext, MD5 and SCRAM-SHA-256 (no TLS, as Cellar's sqlx is
//! built without it).
//!
//! ```text
//! copy_out(sql):  send Query; expect CopyOutResponse (or ErrorResponse, then ReadyForQuery)
//! next(out, n):   loop over buffered messages:
//!                   CopyData  -> append payload (even when it spans reads) to out
//!                   CopyDone, CommandComplete -> note; ReadyForQuery -> finished
//!                   ErrorResponse -> remember, keep reading to ReadyForQuery, return it
//!                   Notice, ParameterStatus, NotificationResponse -> skip
//!                 until out holds n bytes (return true) or the COPY finished (false)
//! ```

mod scram;

use std::fmt;
use std::io;

use bytes::{Buf, BufMut, BytesMut};
use md5::{Digest, Md5};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// How much is read from the socket at a time, at most.
const READ_BYTES: usize = 256 * 1024;
/// The least room a read is given; less, and the unconsumed bytes move to the front first.
const MIN_READ: usize = 64 * 1024;
/// How long a polled COPY read waits when the socket had nothing (see the module docs).
const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(1);
/// The same for a Unix socket, whose server side holds only ~200 KiB (module docs).
const FINE_TICK: std::time::Duration = std::time::Duration::from_micros(500);
/// Messages other than CopyData are small; a bigger one means a broken stream.
const MAX_CONTROL_MESSAGE: usize = 64 * 1024 * 1024;

/// What a data connection can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed or the server closed it.
    #[error("connection to the server lost: {0}")]
    Io(#[from] io::Error),
    /// The server answered with an ErrorResponse.
    #[error("{0}")]
    Server(Box<ServerError>),
    /// Login failed on our side (unsupported method, SCRAM check).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The server sent something this client does not expect.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The URL could not be used.
    #[error("invalid connection options: {0}")]
    Config(String),
}

impl WireError {
    /// The server's SQLSTATE, when the server reported the error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Server(e) => Some(&e.code),
            _ => None,
        }
    }
}

/// An ErrorResponse's fields, as psql shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerError {
    /// `ERROR`, `FATAL` or `PANIC`.
    pub severity: String,
    /// The SQLSTATE, e.g. `57P01` for a terminated connection.
    pub code: String,
    /// The primary message.
    pub message: String,
    /// The optional detail.
    pub detail: Option<String>,
    /// The optional hint.
    pub hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (SQLSTATE {})",
            self.severity, self.message, self.code
        )?;
        if let Some(d) = &self.detail {
            write!(f, "; detail: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; hint: {h}")?;
        }
        Ok(())
    }
}

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Off the reactor while a COPY's data streams in: read when due, not woken at every
    /// packet (module docs). Back on it before anything else is sent or received.
    Polled(StdSocket),
    /// Only while switching between the reactor and `Polled` (or after a switch failed).
    Gone,
}

/// A non-blocking socket the reactor does not watch.
enum StdSocket {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl StdSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => io::Read::read(s, buf),
            Self::Unix(s) => io::Read::read(s, buf),
        }
    }

    fn write(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => io::Write::write(&mut &*s, data),
            Self::Unix(s) => io::Write::write(&mut &*s, data),
        }
    }

    /// Waits until the next read is due.
    async fn wait(&self) {
        match self {
            Self::Tcp(_) => tokio::time::sleep(POLL_EVERY).await,
            Self::Unix(_) => fine_tick::next().await,
        }
    }
}

impl Socket {
    /// Reads into `buf` (initialised memory: see [`ReadBuf`]).
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf).await,
            Self::Unix(s) => s.read(buf).await,
            Self::Polled(s) => loop {
                match s.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => s.wait().await,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => return r,
                }
            },
            Self::Gone => Err(gone()),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.events()?;
        match self {
            Self::Tcp(s) => s.write_all(data).await,
            Self::Unix(s) => s.write_all(data).await,
            Self::Polled(_) | Self::Gone => Err(gone()),
        }
    }

    /// Takes the socket off the reactor for a COPY's data.
    fn polled(&mut self) -> io::Result<()> {
        *self = match std::mem::replace(self, Self::Gone) {
            Self::Tcp(s) => Self::Polled(StdSocket::Tcp(s.into_std()?)),
            Self::Unix(s) => Self::Polled(StdSocket::Unix(s.into_std()?)),
            other => other,
        };
        Ok(())
    }

    /// Puts a polled socket back on the reactor.
    fn events(&mut self) -> io::Result<()> {
        if let Self::Polled(_) = self
            && let Self::Polled(s) = std::mem::replace(self, Self::Gone)
        {
            *self = match s {
                StdSocket::Tcp(s) => Self::Tcp(TcpStream::from_std(s)?),
                StdSocket::Unix(s) => Self::Unix(UnixStream::from_std(s)?),
            };
        }
        Ok(())
    }
}

/// Sub-millisecond waits for polled Unix sockets, which tokio's millisecond timers cannot give
/// (module docs): one thread, asleep on a condvar while nobody waits, otherwise counting a tick
/// and waking every waiter each [`FINE_TICK`].
mod fine_tick {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
    use std::task::{Context, Poll, Waker};

    use super::FINE_TICK;

    struct Ticker {
        waiting: Mutex<Vec<Waker>>,
        someone: Condvar,
        ticks: AtomicU64,
    }

    impl Ticker {
        fn waiting(&self) -> MutexGuard<'_, Vec<Waker>> {
            self.waiting.lock().unwrap_or_else(|e| e.into_inner())
        }

        fn run(&self) {
            loop {
                let mut waiting = self.waiting();
                while waiting.is_empty() {
                    waiting = self
                        .someone
                        .wait(waiting)
                        .unwrap_or_else(|e| e.into_inner());
                }
                drop(waiting);
                std::thread::sleep(FINE_TICK);
                self.ticks.fetch_add(1, Ordering::AcqRel);
                let due = std::mem::take(&mut *self.waiting());
                due.into_iter().for_each(Waker::wake);
            }
        }

        fn wait_for_tick(&self, waker: &Waker) {
            let mut waiting = self.waiting();
            let idle = waiting.is_empty();
            waiting.push(waker.clone());
            drop(waiting);
            // The thread waits on the condvar only while nobody is waiting.
            if idle {
                self.someone.notify_one();
            }
        }
    }

    fn ticker() -> &'static Ticker {
        static TICKER: OnceLock<Ticker> = OnceLock::new();
        let mut started = false;
        let t = TICKER.get_or_init(|| {
            started = true;
            Ticker {
                waiting: Mutex::new(Vec::new()),
                someone: Condvar::new(),
                ticks: AtomicU64::new(0),
            }
        });
        if started {
            std::thread::Builder::new()
                .name("cellar-fine-tick".into())
                .spawn(|| t.run())
                .expect("spawning the fine-tick thread");
        }
        t
    }

    /// Resolves at the next tick (not at a poll for another reason).
    pub(super) fn next() -> impl Future<Output = ()> {
        struct Next(Option<u64>);
        impl Future for Next {
            type Output = ();
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
                let t = ticker();
                let now = t.ticks.load(Ordering::Acquire);
                match self.0 {
                    Some(start) if now != start => return Poll::Ready(()),
                    Some(_) => {}
                    None => self.0 = Some(now),
                }
                t.wait_for_tick(cx.waker());
                Poll::Pending
            }
        }
        Next(None)
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection lost while switching modes",
    )
}

/// One message other than CopyData, whole.
struct Message {
    tag: u8,
    body: BytesMut,
}

/// Bytes read from the socket and not consumed yet: `data[start..end]`. The vector stays
/// initialised once grown, so reads go straight into it without zeroing first (std's `read`
/// takes only initialised memory; zeroing 256 KiB before every read was 2.4% of a pgbench
/// backup's CPU). Consumed bytes are dropped by moving `start`; the few unconsumed bytes move to
/// the front only when the room behind them runs short.
struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    fn new() -> Self {
        Self {
            data: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    fn advance(&mut self, n: usize) {
        assert!(n <= self.len(), "advance past the buffered bytes");
        self.start += n;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
    }

    /// The next `n` buffered bytes as their own buffer (control messages; COPY data is copied
    /// from the slice directly).
    fn split_to(&mut self, n: usize) -> BytesMut {
        let out = BytesMut::from(&self[..n]);
        self.advance(n);
        out
    }

    /// Free space after the buffered bytes, at least [`MIN_READ`] (and all of it up to
    /// [`READ_BYTES`] once the buffer has grown there).
    fn spare(&mut self) -> &mut [u8] {
        if self.data.len() - self.end < MIN_READ {
            // Nothing to move when the bytes already start at the front (a long control
            // message still arriving: the buffer only grows).
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            }
            let want = (self.end + MIN_READ).max(READ_BYTES);
            if self.data.len() < want {
                self.data.resize(want, 0);
            }
        }
        &mut self.data[self.end..]
    }

    /// Reads from `socket` into the spare room; returns the bytes read (0: closed).
    async fn fill(&mut self, socket: &mut Socket) -> io::Result<usize> {
        let n = socket.read(self.spare()).await?;
        self.end += n;
        Ok(n)
    }
}

impl std::ops::Deref for ReadBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }
}

/// Where a COPY stands between calls to [`WireConn::copy_out_next`].
#[derive(Default)]
struct CopyState {
    /// Payload bytes of the current CopyData message not yet appended.
    pending: usize,
    /// The server reported an error; the stream is drained to ReadyForQuery before returning it.
    error: Option<ServerError>,
}

/// A logged-in connection speaking the simple query protocol.
pub struct WireConn {
    socket: Socket,
    rbuf: ReadBuf,
    copy: Option<CopyState>,
    /// CopyData messages of the current (or last) COPY: its rows, as the server sends exactly
    /// one message per row of `COPY TO` ("always one per row", protocol docs).
    copy_rows: u64,
}

impl WireConn {
    /// Connects and logs in as sqlx would with `url`, naming the session `application`.
    pub async fn connect(url: &str, application: &str) -> Result<Self, WireError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| WireError::Config(e.to_string()))?;
        // sqlx resolved the password (URL, PGPASSWORD, .pgpass) and keeps it in its URL form.
        let password = options
            .to_url_lossy()
            .password()
            .map(percent_decode)
            .transpose()?;
        let socket = match socket_path(&options) {
            Some(path) => Socket::Unix(UnixStream::connect(&path).await?),
            None => {
                let s = TcpStream::connect((options.get_host(), options.get_port())).await?;
                s.set_nodelay(true)?;
                Socket::Tcp(s)
            }
        };
        let mut conn = Self {
            socket,
            rbuf: ReadBuf::new(),
            copy: None,
            copy_rows: 0,
        };
        conn.startup(&options, password.as_deref(), application)
            .await?;
        Ok(conn)
    }

    async fn startup(
        &mut self,
        options: &PgConnectOptions,
        password: Option<&str>,
        application: &str,
    ) -> Result<(), WireError> {
        let user = options.get_username();
        let mut params: Vec<(&str, &str)> = vec![
            ("user", user),
            ("DateStyle", "ISO, MDY"),
            ("client_encoding", "UTF8"),
            ("TimeZone", "UTC"),
            ("application_name", application),
        ];
        if let Some(db) = options.get_database() {
            params.push(("database", db));
        }
        if let Some(o) = options.get_options() {
            params.push(("options", o));
        }
        let mut body = Vec::new();
        body.put_i32(196_608); // protocol 3.0
        for (k, v) in params {
            put_cstr(&mut body, k)?;
            put_cstr(&mut body, v)?;
        }
        body.push(0);
        let mut packet = Vec::with_capacity(body.len() + 4);
        packet.put_i32(body.len() as i32 + 4);
        packet.extend_from_slice(&body);
        self.socket.write_all(&packet).await?;

        let mut scram = None;
        loop {
            let msg = self.recv().await?;
            match msg.tag {
                b'R' => {
                    let mut body = msg.body;
                    let code = get_i32(&mut body)?;
                    match code {
                        0 => {}
                        3 => {
                            let pw = need_password(password)?;
                            let mut m = Vec::new();
                            put_cstr(&mut m, pw)?;
                            self.send(b'p', &m).await?;
                        }
                        5 => {
                            let pw = need_password(password)?;
                            let salt = body.get(..4).ok_or_else(short)?;
                            let inner =
                                hex(&Md5::digest([pw.as_bytes(), user.as_bytes()].concat()));
                            let outer = hex(&Md5::digest([inner.as_bytes(), salt].concat()));
                            let mut m = Vec::new();
                            put_cstr(&mut m, &format!("md5{outer}"))?;
                            self.send(b'p', &m).await?;
                        }
                        10 => {
                            let mechanisms: Vec<&[u8]> = body[..]
                                .split(|&b| b == 0)
                                .filter(|m| !m.is_empty())
                                .collect();
                            if !mechanisms.contains(&&b"SCRAM-SHA-256"[..]) {
                                let names: Vec<String> = mechanisms
                                    .iter()
                                    .map(|m| String::from_utf8_lossy(m).into_owned())
                                    .collect();
                                return Err(WireError::Auth(format!(
                                    "the server offers only SASL mechanisms {names:?}; \
                                     Cellar speaks SCRAM-SHA-256 without channel binding"
                                )));
                            }
                            let s = scram::Scram::new(need_password(password)?);
                            let first = s.client_first();
                            let mut m = Vec::new();
                            put_cstr(&mut m, "SCRAM-SHA-256")?;
                            m.put_i32(first.len() as i32);
                            m.extend_from_slice(first.as_bytes());
                            self.send(b'p', &m).await?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| unexpected("SASLContinue"))?;
                            let reply = s.client_final(&body)?;
                            self.send(b'p', reply.as_bytes()).await?;
                        }
                        12 => {
                            let s = scram.as_ref().ok_or_else(|| unexpected("SASLFinal"))?;
                            s.check_server_final(&body)?;
                        }
                        other => {
                            return Err(WireError::Auth(format!(
                                "the server asks for authentication method {other} (Kerberos, \
                                 GSSAPI or SSPI), which Cellar does not support: use password, \
                                 md5 or scram-sha-256 for this role in pg_hba.conf"
                            )));
                        }
                    }
                }
                b'E' => return Err(WireError::Server(Box::new(parse_error(&msg.body)))),
                b'K' | b'S' | b'N' => {}
                b'Z' => return Ok(()),
                other => {
                    return Err(unexpected(&format!(
                        "message {:?} during login",
                        other as char
                    )));
                }
            }
        }
    }

    /// Sends `sql` as a simple Query message on an idle connection.
    async fn send_query(&mut self, sql: &str) -> Result<(), WireError> {
        self.check_idle()?;
        let mut m = Vec::with_capacity(sql.len() + 1);
        put_cstr(&mut m, sql)?;
        self.send(b'Q', &m).await
    }

    /// Runs `sql` (one or more statements, no results wanted) with the simple query protocol.
    pub async fn simple_query(&mut self, sql: &str) -> Result<(), WireError> {
        self.send_query(sql).await?;
        let mut error = None;
        loop {
            let msg = self.recv().await?;
            match msg.tag {
                b'Z' => return error.map_or(Ok(()), |e| Err(WireError::Server(Box::new(e)))),
                b'E' => error = error.or(Some(parse_error(&msg.body))),
                b'C' | b'T' | b'D' | b'I' | b'N' | b'S' | b'A' => {}
                b'G' | b'H' | b'W' => {
                    return Err(unexpected("COPY in a simple query"));
                }
                other => return Err(unexpected(&format!("message {:?}", other as char))),
            }
        }
    }

    /// Starts `COPY ... TO STDOUT`; read it with [`WireConn::copy_out_next`] until that returns
    /// false. An error before the first row (a bad statement) comes back here.
    pub async fn copy_out(&mut self, sql: &str) -> Result<(), WireError> {
        self.send_query(sql).await?;
        let mut error = None;
        loop {
            let msg = self.recv().await?;
            match msg.tag {
                b'H' if error.is_none() => {
                    self.socket.polled()?;
                    self.copy = Some(CopyState::default());
                    self.copy_rows = 0;
                    return Ok(());
                }
                b'E' => error = error.or(Some(parse_error(&msg.body))),
                b'Z' => {
                    return Err(match error {
                        Some(e) => WireError::Server(Box::new(e)),
                        None => unexpected("no COPY started"),
                    });
                }
                b'N' | b'S' | b'A' | b'C' | b'T' | b'D' | b'I' => {}
                other => return Err(unexpected(&format!("message {:?}", other as char))),
            }
        }
    }

    /// Rows of the current COPY received so far (or of the last one, once finished): its
    /// CopyData messages, since the server sends one per row. Counting them costs nothing,
    /// where counting newlines in the text took 3% of a pgbench backup's CPU.
    pub fn copy_rows(&self) -> u64 {
        self.copy_rows
    }

    /// Appends COPY data to `out` until it holds `limit` bytes (returns true: call again; a row
    /// may continue in the next call) or the COPY has finished (returns false; the connection
    /// is idle again). Buffers of exactly `limit` bytes become whole segments of the backup
    /// format without another copy (`format::object`).
    pub async fn copy_out_next(
        &mut self,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<bool, WireError> {
        let mut state = self
            .copy
            .take()
            .ok_or_else(|| unexpected("copy_out_next without a COPY in progress"))?;
        loop {
            // Room left in `out`; after an error everything is read (and dropped) to the end.
            let room = |out: &BytesMut, state: &CopyState| match state.error {
                None => limit.saturating_sub(out.len()),
                Some(_) => usize::MAX,
            };
            // The rest of a CopyData payload, as much as is buffered and fits.
            if state.pending > 0 {
                let n = state.pending.min(self.rbuf.len()).min(room(out, &state));
                out.extend_from_slice(&self.rbuf[..n]);
                self.rbuf.advance(n);
                state.pending -= n;
            }
            // Runs of whole CopyData messages, parsed in place and consumed with one `advance`
            // (two per row were 1.6% of a pgbench backup's samples).
            if state.pending == 0 && state.error.is_none() {
                let (mut pos, buf) = (0, &self.rbuf[..]);
                while out.len() < limit && buf.len() - pos >= 5 && buf[pos] == b'd' {
                    let len = u32::from_be_bytes([
                        buf[pos + 1],
                        buf[pos + 2],
                        buf[pos + 3],
                        buf[pos + 4],
                    ]) as usize;
                    let end = pos + 1 + len;
                    if len < 4 || end > buf.len() {
                        break; // the loop below refuses the length or takes what is buffered
                    }
                    let take = (len - 4).min(limit - out.len());
                    out.extend_from_slice(&buf[pos + 5..pos + 5 + take]);
                    self.copy_rows += 1;
                    state.pending = len - 4 - take;
                    pos += 5 + take;
                    if state.pending > 0 {
                        break; // `out` is full mid-row: the rest opens the next buffer
                    }
                }
                self.rbuf.advance(pos);
            }
            // Whole messages from the buffer, until `out` is full (after an error, to the end:
            // ReadyForQuery is already on its way and nothing else will come).
            while state.pending == 0
                && self.rbuf.len() >= 5
                && (out.len() < limit || state.error.is_some())
            {
                let tag = self.rbuf[0];
                let len =
                    u32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]])
                        as usize;
                if len < 4 {
                    return Err(WireError::Protocol(format!("message length {len}")));
                }
                if tag == b'd' {
                    self.rbuf.advance(5);
                    self.copy_rows += 1;
                    let payload = len - 4;
                    let n = payload.min(self.rbuf.len()).min(room(out, &state));
                    out.extend_from_slice(&self.rbuf[..n]);
                    self.rbuf.advance(n);
                    state.pending = payload - n;
                    continue;
                }
                if len > MAX_CONTROL_MESSAGE {
                    return Err(WireError::Protocol(format!(
                        "{len}-byte message during COPY"
                    )));
                }
                if self.rbuf.len() < len + 1 {
                    break;
                }
                let mut body = self.rbuf.split_to(len + 1);
                body.advance(5);
                match tag {
                    b'c' | b'C' | b'N' | b'S' | b'A' => {}
                    b'E' => state.error = state.error.or(Some(parse_error(&body))),
                    b'Z' => {
                        self.socket.events()?;
                        return match state.error {
                            Some(e) => Err(WireError::Server(Box::new(e))),
                            None => Ok(false),
                        };
                    }
                    other => {
                        return Err(unexpected(&format!(
                            "message {:?} during COPY",
                            other as char
                        )));
                    }
                }
            }
            if out.len() >= limit && state.error.is_none() {
                self.copy = Some(state);
                return Ok(true);
            }
            match self.rbuf.fill(&mut self.socket).await {
                Ok(0) | Err(_) if state.error.is_some() => {
                    // A FATAL error (a terminated backend) closes the socket after the message.
                    return Err(WireError::Server(Box::new(
                        state.error.take().expect("checked"),
                    )));
                }
                Ok(0) => return Err(closed()),
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn check_idle(&self) -> Result<(), WireError> {
        match self.copy {
            Some(_) => Err(unexpected("a query while a COPY is in progress")),
            None => Ok(()),
        }
    }

    async fn send(&mut self, tag: u8, body: &[u8]) -> Result<(), WireError> {
        let mut m = Vec::with_capacity(body.len() + 5);
        m.push(tag);
        m.put_i32(body.len() as i32 + 4);
        m.extend_from_slice(body);
        self.socket.write_all(&m).await?;
        Ok(())
    }

    /// The next whole message (not for use during a COPY's data).
    async fn recv(&mut self) -> Result<Message, WireError> {
        loop {
            if self.rbuf.len() >= 5 {
                let len =
                    u32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]])
                        as usize;
                if !(4..=MAX_CONTROL_MESSAGE).contains(&len) {
                    return Err(WireError::Protocol(format!("message length {len}")));
                }
                if self.rbuf.len() > len {
                    let tag = self.rbuf[0];
                    let mut body = self.rbuf.split_to(len + 1);
                    body.advance(5);
                    return Ok(Message { tag, body });
                }
            }
            if self.rbuf.fill(&mut self.socket).await? == 0 {
                return Err(closed());
            }
        }
    }
}

impl Drop for WireConn {
    /// Says goodbye (Terminate) if the socket takes it without waiting, so the server ends the
    /// session quietly instead of logging an unexpected end of file; closing does the rest.
    fn drop(&mut self) {
        const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];
        let _ = match &self.socket {
            Socket::Tcp(s) => s.try_write(&TERMINATE),
            Socket::Unix(s) => s.try_write(&TERMINATE),
            Socket::Polled(s) => s.write(&TERMINATE),
            Socket::Gone => Ok(0),
        };
    }
}

/// The Unix socket sqlx would use: an explicit socket directory, or a host that is a path.
fn socket_path(options: &PgConnectOptions) -> Option<String> {
    let port = options.get_port();
    match options.get_socket() {
        Some(dir) => Some(format!("{}/.s.PGSQL.{port}", dir.display())),
        None if options.get_host().starts_with('/') => {
            Some(format!("{}/.s.PGSQL.{port}", options.get_host()))
        }
        None => None,
    }
}

fn percent_decode(s: &str) -> Result<String, WireError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hexpair = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| WireError::Config("bad percent-encoding in the password".into()))?;
            out.push(hexpair);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| WireError::Config("the password is not UTF-8".into()))
}

fn need_password(password: Option<&str>) -> Result<&str, WireError> {
    password.ok_or_else(|| {
        WireError::Auth(
            "the server asks for a password and none is set (URL, PGPASSWORD or .pgpass)".into(),
        )
    })
}

fn put_cstr(buf: &mut Vec<u8>, s: &str) -> Result<(), WireError> {
    if s.as_bytes().contains(&0) {
        return Err(WireError::Config("a value contains a NUL byte".into()));
    }
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    Ok(())
}

fn get_i32(body: &mut BytesMut) -> Result<i32, WireError> {
    if body.len() < 4 {
        return Err(short());
    }
    Ok(body.get_i32())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn short() -> WireError {
    WireError::Protocol("message too short".into())
}

fn unexpected(what: &str) -> WireError {
    WireError::Protocol(format!("unexpected {what}"))
}

fn closed() -> WireError {
    WireError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the server closed the connection",
    ))
}

/// The fields of an ErrorResponse: a type byte and a C string each, ending with a zero byte.
fn parse_error(body: &[u8]) -> ServerError {
    let mut e = ServerError::default();
    let mut localized_severity = String::new();
    for field in body.split(|&b| b == 0) {
        let Some((&kind, value)) = field.split_first() else {
            continue;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match kind {
            b'V' => e.severity = value,
            b'S' => localized_severity = value,
            b'C' => e.code = value,
            b'M' => e.message = value,
            b'D' => e.detail = Some(value),
            b'H' => e.hint = Some(value),
            _ => {}
        }
    }
    if e.severity.is_empty() {
        e.severity = localized_severity;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_responses_read_like_psql() {
        let body =
            b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0";
        let e = parse_error(body);
        assert_eq!(e.code, "57P01");
        assert_eq!(
            e.to_string(),
            "FATAL: terminating connection due to administrator command (SQLSTATE 57P01)"
        );
        let e = parse_error(b"SERROR\0C42P01\0Mrelation \"x\" does not exist\0Hcheck it\0\0");
        assert_eq!(
            e.to_string(),
            "ERROR: relation \"x\" does not exist (SQLSTATE 42P01); hint: check it"
        );
    }

    #[test]
    fn passwords_are_percent_decoded() {
        assert_eq!(percent_decode("p%40ss%2Fw%C3%B6rd").unwrap(), "p@ss/wörd");
        assert!(percent_decode("bad%4").is_err());
        assert!(percent_decode("%ff").is_err());
    }

    #[test]
    fn sqlx_keeps_the_password_in_its_url_form() {
        let options: PgConnectOptions = "postgres://u:p%40ss%3Aw@h:6543/db".parse().unwrap();
        let pw = options
            .to_url_lossy()
            .password()
            .map(percent_decode)
            .transpose()
            .unwrap();
        assert_eq!(pw.as_deref(), Some("p@ss:w"));
        assert_eq!(socket_path(&options), None);
        let options: PgConnectOptions = "postgres://u@%2Fvar%2Frun%2Fpostgresql:5433/db"
            .parse()
            .unwrap();
        assert_eq!(
            socket_path(&options).as_deref(),
            Some("/var/run/postgresql/.s.PGSQL.5433")
        );
    }

    #[test]
    fn md5_hash_matches_postgres() {
        // SELECT 'md5' || md5(md5('secret' || 'alice') || 'abcd')
        let inner = hex(&Md5::digest(b"secretalice"));
        let outer = hex(&Md5::digest([inner.as_bytes(), b"abcd"].concat()));
        assert_eq!(inner, "4a0a68b43b6cd5cf266fa02f196e2371");
        assert_eq!(outer, "c90bcafc0a2b54511742383e34d5dc9d");
    }
}
