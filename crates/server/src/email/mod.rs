//! Email: an SMTP sender (lettre) and the job that delivers the outbox through it.
//!
//! Messages are written to `outbox` in the transaction that causes them; a trigger enqueues
//! each one's `outbox.deliver` job in that transaction (migration 0024). The job runs as the
//! owner, as a mail server would: it reads the message, sends it, and records `sent_at`,
//! `attempts` and `last_error`. A message already sent is not sent again (a job that ran twice,
//! its worker killed after the send, is the one case where a recipient may get two copies).

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use crate::jobs::{JobError, JobSpec, Registry};

/// Delivers one outbox message (payload `{"outbox_id": …}`); enqueued by the database.
pub const DELIVER: JobSpec = JobSpec {
    kind: "outbox.deliver",
    max_attempts: 20,
};

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("TENANTRY_SMTP_URL: {0}")]
    Url(String),
    #[error("TENANTRY_SMTP_FROM: {0}")]
    From(String),
}

/// Sends email through one SMTP server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// `url`: `smtps://host:465` (TLS from the start) or `smtp://host:587?tls=required`
    /// (STARTTLS), with `user:password@` to authenticate; a plain `smtp://host:port` only to a
    /// relay on this machine (lettre sends plain `smtp://` unencrypted, links and credentials
    /// included). `from`: the sender, `Name <address>` or an address.
    pub fn new(url: &str, from: &str) -> Result<Self, EmailError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| EmailError::Url(e.to_string()))?;
        let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        let tls_asked = parsed.query_pairs().any(|(k, _)| k == "tls");
        if parsed.scheme() == "smtp" && !tls_asked && !loopback {
            return Err(EmailError::Url(
                "plain smtp:// sends mail unencrypted; use smtps://host:465 or smtp://host:587?tls=required \
                 (plain smtp:// is accepted only for a relay on this machine)"
                    .into(),
            ));
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| EmailError::Url(e.to_string()))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from = from
            .parse()
            .map_err(|e: lettre::address::AddressError| EmailError::From(e.to_string()))?;
        Ok(Self { transport, from })
    }

    /// Sends `text` (and its HTML alternative) to `to`. A refusal the server calls permanent
    /// (or an address that is not one) is `Fatal`; anything else may pass on a later attempt.
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        html: Option<&str>,
    ) -> Result<(), JobError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| JobError::Fatal(format!("recipient {to:?}: {e}")))?;
        let plain = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_string());
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject);
        let message = match html {
            Some(html) => builder.multipart(
                MultiPart::alternative().singlepart(plain).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.to_string()),
                ),
            ),
            None => builder.singlepart(plain),
        }
        .map_err(|e| JobError::Fatal(format!("the message cannot be built: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(JobError::Fatal(format!("SMTP refused it: {e}"))),
            Err(e) => Err(JobError::Retry(format!("SMTP: {e}"))),
        }
    }
}

/// Registers the delivery job when there is a mailer; without one its jobs wait for a worker
/// that has one.
pub fn register(registry: Registry, mailer: Option<Arc<Mailer>>) -> Registry {
    let Some(mailer) = mailer else {
        return registry;
    };
    registry.register(DELIVER, move |run| {
        let mailer = mailer.clone();
        async move {
            let id: Uuid = run.job.payload["outbox_id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .ok_or_else(|| JobError::Fatal("the payload names no outbox message".into()))?;
            // The message stays locked while it is sent: a second run of the same job waits,
            // then finds it sent. A message older than a week (written while no sender ran, or
            // through a long outage) is not sent late: its link may be dead; the row says why.
            let mut tx = run.owner()?.0.begin().await?;
            let message: Option<(String, String, String, Option<String>, bool)> = sqlx::query_as(
                r"SELECT recipient, subject, body, html_body, created_at < now() - interval '7 days'
                    FROM outbox WHERE id = $1 AND sent_at IS NULL FOR UPDATE",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            // Gone with its organization, or sent by an earlier run: nothing to do.
            let Some((to, subject, text, html, stale)) = message else {
                return Ok(());
            };
            let sent = if stale {
                Err(JobError::Fatal(
                    "not sent: older than 7 days when a sender could take it".into(),
                ))
            } else {
                mailer.send(&to, &subject, &text, html.as_deref()).await
            };
            sqlx::query(
                r"UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                        sent_at = CASE WHEN $2::text IS NULL THEN now() END
                   WHERE id = $1",
            )
            .bind(id)
            .bind(sent.as_ref().err().map(ToString::to_string))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            sent
        }
    })
}

/// Emails the operator an alert the worker raised (payload `{"key": …}`, queued with the alert).
pub const ALERT: JobSpec = JobSpec {
    kind: tenantry_db::queue::ALERT_KIND,
    max_attempts: 20,
};

/// Registers the operator's alerts when there is both a mailer and an operator address;
/// without them the alerts wait (recorded, and logged every minute) for a worker that has them.
pub fn register_alerts(
    registry: Registry,
    mailer: Option<Arc<Mailer>>,
    operator: Option<String>,
) -> Registry {
    let (Some(mailer), Some(operator)) = (mailer, operator) else {
        return registry;
    };
    registry.register(ALERT, move |run| {
        let (mailer, operator) = (mailer.clone(), operator.clone());
        async move {
            let key = run.job.payload["key"]
                .as_str()
                .ok_or_else(|| JobError::Fatal("the payload names no alert".into()))?;
            // Locked while sent, as an outbox message is: a second run finds it sent.
            let mut tx = run.owner()?.0.begin().await?;
            let alert: Option<(String, String)> = sqlx::query_as(
                r"SELECT subject, body FROM queue.alerts
                   WHERE key = $1 AND sent_at IS NULL FOR UPDATE",
            )
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((subject, body)) = alert else {
                return Ok(());
            };
            let sent = mailer.send(&operator, &subject, &body, None).await;
            sqlx::query(
                r"UPDATE queue.alerts SET attempts = attempts + 1, last_error = $2,
                        sent_at = CASE WHEN $2::text IS NULL THEN now() END
                   WHERE key = $1",
            )
            .bind(key)
            .bind(sent.as_ref().err().map(ToString::to_string))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            sent
        }
    })
}

/// `text` safe inside HTML.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::Mailer;

    #[test]
    fn mail_to_another_machine_is_never_sent_in_clear() {
        let from = "Tenantry <noreply@example.com>";
        assert!(Mailer::new("smtp://mail.example.com:25", from).is_err());
        assert!(Mailer::new("smtp://user:secret@mail.example.com:587", from).is_err());
        assert!(Mailer::new("smtp://mail.example.com:587?tls=required", from).is_ok());
        assert!(Mailer::new("smtps://user:secret@mail.example.com:465", from).is_ok());
        assert!(
            Mailer::new("smtp://127.0.0.1:2525", from).is_ok(),
            "a local relay"
        );
        assert!(Mailer::new("smtps://mail.example.com", "not an address").is_err());
    }
}
