//! Sending: SMTP through lettre when `ARBOR_SMTP_URL` is set, otherwise capture only.

use std::time::Duration;

use anyhow::{anyhow, Context};
use base64::Engine as _;
use lettre::{
    message::{header::ContentType, Attachment as LAttachment, Mailbox, MultiPart, SinglePart},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use super::message::OutgoingEmail;
use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Sent,
    /// Kept in the outbox only (no SMTP configured).
    Captured,
}

pub struct Mailer {
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl Mailer {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let from: Mailbox = config
            .mail_from
            .parse()
            .with_context(|| format!("ARBOR_MAIL_FROM {:?} is not a mailbox", config.mail_from))?;
        let smtp = match &config.smtp_url {
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("ARBOR_SMTP_URL is not a valid SMTP URL")?
                    .timeout(Some(Duration::from_secs(15)))
                    .build(),
            ),
            None => None,
        };
        Ok(Self { smtp, from })
    }

    pub fn is_smtp(&self) -> bool {
        self.smtp.is_some()
    }

    /// Domain for Message-IDs.
    pub fn domain(&self) -> &str {
        self.from.email.domain()
    }

    pub fn build(&self, mail: &OutgoingEmail, message_id: &str) -> anyhow::Result<Message> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone())
            .message_id(Some(message_id.to_owned()));
        if mail.to.is_empty() {
            return Err(anyhow!("email has no recipients"));
        }
        for to in &mail.to {
            b = b.to(to
                .parse()
                .with_context(|| format!("bad recipient {to:?}"))?);
        }
        for cc in &mail.cc {
            b = b.cc(cc.parse().with_context(|| format!("bad cc {cc:?}"))?);
        }
        if let Some(r) = &mail.reply_to {
            b = b.reply_to(r.parse().with_context(|| format!("bad reply-to {r:?}"))?);
        }
        let body = match &mail.html {
            Some(html) => MultiPart::alternative()
                .singlepart(SinglePart::plain(mail.text.clone()))
                .singlepart(SinglePart::html(html.clone())),
            None => MultiPart::mixed().singlepart(SinglePart::plain(mail.text.clone())),
        };
        let message = if mail.attachments.is_empty() {
            b.multipart(body)?
        } else {
            let mut mixed = MultiPart::mixed().multipart(body);
            for a in &mail.attachments {
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&a.data_base64)
                    .with_context(|| format!("attachment {} is not base64", a.filename))?;
                let ct = ContentType::parse(&a.content_type)
                    .map_err(|e| anyhow!("attachment content type {:?}: {e}", a.content_type))?;
                mixed = mixed.singlepart(LAttachment::new(a.filename.clone()).body(data, ct));
            }
            b.multipart(mixed)?
        };
        Ok(message)
    }

    pub async fn send(&self, mail: &OutgoingEmail, message_id: &str) -> anyhow::Result<Delivered> {
        let message = self.build(mail, message_id)?;
        match &self.smtp {
            Some(t) => {
                t.send(message).await.context("SMTP delivery failed")?;
                Ok(Delivered::Sent)
            }
            None => Ok(Delivered::Captured),
        }
    }
}
