//! The local stack's window on what would have left the building (never deployed): the mail
//! outbox as a page and as JSON, and the event log.

use std::sync::Arc;

use askama::Template;
use axum::{
    Json, Router,
    extract::State,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use time::format_description::well_known::Rfc3339;

use app::ports::{DevOutbox, DomainEvent, SentMail};

use crate::Problem;

type Outbox = Arc<dyn DevOutbox>;

const SHOWN: u16 = 100;

/// A piece of an email's text: links become clickable (an invitation's accept link, say).
enum Part {
    Text(String),
    Link(String),
}

fn linkify(text: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut plain = String::new();
    for piece in text.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end();
        if word.starts_with("http://") || word.starts_with("https://") {
            parts.push(Part::Text(std::mem::take(&mut plain)));
            parts.push(Part::Link(word.to_owned()));
            plain.push_str(&piece[word.len()..]);
        } else {
            plain.push_str(piece);
        }
    }
    parts.push(Part::Text(plain));
    parts
}

struct MailView {
    to: String,
    subject: String,
    sent_at: String,
    text: Vec<Part>,
}

#[derive(Template)]
#[template(path = "dev_outbox.html")]
struct OutboxPage {
    mails: Vec<MailView>,
}

async fn outbox_page(State(outbox): State<Outbox>) -> Result<Response, Problem> {
    let mails = outbox
        .recent_mail(SHOWN)
        .await?
        .into_iter()
        .map(|m| MailView {
            to: m.message.to.to_string(),
            subject: m.message.subject,
            sent_at: m.sent_at.format(&Rfc3339).unwrap_or_default(),
            text: linkify(&m.message.text),
        })
        .collect();
    let html = OutboxPage { mails }
        .render()
        .map_err(|e| Problem::internal(&e))?;
    Ok(Html(html).into_response())
}

async fn outbox_json(State(outbox): State<Outbox>) -> Result<Json<Vec<SentMail>>, Problem> {
    Ok(Json(outbox.recent_mail(SHOWN).await?))
}

async fn events_json(State(outbox): State<Outbox>) -> Result<Json<Vec<DomainEvent>>, Problem> {
    Ok(Json(outbox.recent_events(SHOWN).await?))
}

pub fn routes(outbox: Outbox) -> Router {
    Router::new()
        .route("/dev/outbox", get(outbox_page))
        .route("/dev/outbox.json", get(outbox_json))
        .route("/dev/events.json", get(events_json))
        .with_state(outbox)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_in_mail_text_become_links_and_the_rest_stays_text() {
        let parts = linkify("Accept: http://127.0.0.1:3000/invite/abc\nThanks");
        let shown: Vec<String> = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => format!("T({t})"),
                Part::Link(u) => format!("L({u})"),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "T(Accept: )",
                "L(http://127.0.0.1:3000/invite/abc)",
                "T(\nThanks)"
            ]
        );
    }
}

#[derive(serde::Deserialize)]
struct TickQuery {
    /// RFC 3339; default: now.
    now: Option<String>,
}

/// `POST /dev/tick?now=<RFC 3339>`: one auto-pay tick as if at that time (to try dates).
async fn tick(
    State(services): State<crate::AppState>,
    axum::extract::Query(query): axum::extract::Query<TickQuery>,
) -> Result<Json<app::schedules::TickReport>, Problem> {
    let now = match query.now.as_deref() {
        None => services.clock.now(),
        Some(text) => time::OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| Problem::invalid("now: an RFC 3339 time, like 2026-12-01T06:00:00Z"))?,
    };
    let report = app::schedules::tick(&services, now, None).await?;
    Ok(Json(report))
}

/// `POST /dev/tick` over the local stack's services.
pub fn tick_routes(services: crate::AppState) -> Router {
    Router::new()
        .route("/dev/tick", axum::routing::post(tick))
        .with_state(services)
}
