//! A local SMTP server for tests: it speaks enough of RFC 5321 for a real client (EHLO, MAIL,
//! RCPT, DATA, RSET, NOOP, QUIT) and records every message it accepts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A message as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA section: headers and body, dot-unstuffed.
    pub data: String,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    stalls: Arc<Stalls>,
    task: JoinHandle<()>,
}

/// Messages the server is to take in without ever answering their final dot (so the client
/// waits, mid-send, and the message is not accepted), and how many it has held so far.
#[derive(Default)]
struct Stalls {
    to_hold: AtomicUsize,
    held: AtomicUsize,
}

impl SmtpServer {
    /// Listens on `port` of 127.0.0.1 (0: any free one).
    pub async fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the test SMTP server");
        let addr = listener.local_addr().expect("addr");
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let stalls: Arc<Stalls> = Arc::default();
        let task = tokio::spawn({
            let (received, stalls) = (received.clone(), stalls.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(session(stream, received.clone(), stalls.clone()));
                }
            }
        });
        Self {
            addr,
            received,
            stalls,
            task,
        }
    }

    /// The next message's DATA is read to its end and never answered: the sender hangs there
    /// until it gives up or dies, and the message counts as not accepted (RFC 5321 §4.1.1.4: the
    /// server takes responsibility only with its 250).
    pub fn hold_the_next_message(&self) {
        self.stalls.to_hold.fetch_add(1, Ordering::SeqCst);
    }

    /// How many messages have been held so far.
    pub fn held(&self) -> usize {
        self.stalls.held.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().expect("received").clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    received: Arc<Mutex<Vec<Received>>>,
    stalls: Arc<Stalls>,
) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 test.local ESMTP\r\n").await;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") {
            "250-test.local\r\n250 8BITMIME"
        } else if upper.starts_with("HELO") {
            "250 test.local"
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().trim_matches(['<', '>']).to_string();
            to.clear();
            "250 OK"
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().trim_matches(['<', '>']).to_string());
            "250 OK"
        } else if upper == "DATA" {
            let _ = write.write_all(b"354 go ahead\r\n").await;
            let mut data = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "." {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                data.push('\n');
            }
            let hold = stalls
                .to_hold
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if hold {
                stalls.held.fetch_add(1, Ordering::SeqCst);
                // Silent until the client hangs up; the message is dropped with the session.
                while let Ok(Some(_)) = lines.next_line().await {}
                return;
            }
            received.lock().expect("received").push(Received {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            "250 queued"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            "250 OK"
        } else {
            "502 not implemented"
        };
        if write
            .write_all(format!("{answer}\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}
