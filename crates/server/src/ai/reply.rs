//! A turn of a conversation: the user's message, the provider's reply streamed as it comes, the
//! tokens reserved before and settled after.
//!
//! 1. One transaction as the caller, one statement: the conversation (its author only), the
//!    tool and the latest turns read, and when the caller may talk, the user's message stored,
//!    the tool's tier checked and the most the reply can cost reserved against the monthly
//!    budget (402 before any provider call); then the record's summary, where there is one,
//!    under the caller's RLS. The title an untitled conversation takes from its first message
//!    is set at the end, with the tokens: nothing but the reservation waits for it.
//! 2. The transaction commits while the provider is asked; a refusal before it streams
//!    releases the reservation and is 502.
//! 3. A task relays the reply's pieces to the client and, at the end, stores the reply in a
//!    second transaction — `complete`, or `partial` when the provider failed mid-stream or the
//!    client left (then the provider connection is dropped) — and settles the tokens (the
//!    provider's counts, estimated where it sent none). The task, not the request, owns that
//!    ending, so a client that disconnects cannot skip it.

use tokio::sync::mpsc;
use uuid::Uuid;

use super::context;
use super::provider::{self, Prompt, Provider, ReplyStream, Speaker};
use super::store::{self, NewTurn};
use super::{ContextType, Message, NewMessage};
use crate::http::{AppState, Caller};
use crate::kernel::access::Module;
use crate::kernel::error::{Error, Result};
use crate::kernel::org_tx::OrgTx;

/// The tool a message without one uses: plain conversation.
pub const CHAT_TOOL: &str = "assistant";

/// What step 1 settled for the rest of the turn.
pub struct Prepared {
    pub org: Uuid,
    pub conversation: Uuid,
    pub provider: Provider,
    pub prompt: Prompt,
    pub reservation: Uuid,
    /// The user's message, stored.
    pub message: Message,
    /// The id the reply will have (taken now: it sorts after the message).
    pub reply_id: Uuid,
    /// The title the conversation takes when the reply is settled (its first message's).
    pub title: Option<String>,
}

impl Prepared {
    fn settlement<'a>(&'a self, model: &'a str, input: i64, output: i64) -> store::Settlement<'a> {
        store::Settlement {
            reservation: self.reservation,
            conversation: self.conversation,
            model,
            input,
            output,
            title: self.title.as_deref(),
        }
    }
}

/// What the relay tells the client.
#[derive(Debug)]
pub enum Relayed {
    /// A piece of the reply's text.
    Delta(String),
    /// The provider failed mid-reply (the stored partial reply follows).
    Failed(String),
    /// The reply as stored (`complete` or `partial`).
    Done(Message),
    /// Storing the reply failed (its tokens were still counted where the database allowed).
    Lost(Error),
}

const SYSTEM: &str = "You are the assistant of a business workspace. Answer the user's questions \
clearly and briefly. Base statements about their records on the context given; say when it does \
not contain what is asked.";

/// Introduces a tool's instructions in the system prompt.
const TASK_HEADING: &str = "\n\nTask: ";
/// Introduces the KPI a tool explains.
const KPI_HEADING: &str = "\n\nThe KPI:\n";
/// Introduces the record a conversation is about.
const RECORD_HEADING: &str = "\n\nThe conversation is about this record:\n";
/// The most bytes of a record's or KPI's summary the model is sent (the reservation counts
/// them before the summary is read).
const SUMMARY_BYTES: usize = 8 * 1024;

/// Appends `heading` and `summary`, cut to [`SUMMARY_BYTES`] at a character's boundary.
fn push_summary(system: &mut String, heading: &str, summary: &str) {
    let mut end = summary.len().min(SUMMARY_BYTES);
    while !summary.is_char_boundary(end) {
        end -= 1;
    }
    system.push_str(heading);
    system.push_str(&summary[..end]);
}

/// Step 1, in one transaction as the caller: one statement reads the turn's start and, when
/// the caller may talk, stores the message and reserves the reply's tokens (see
/// [`store::start_turn`]); the context's, where there is one, besides. Returns the
/// transaction to commit in step 2.
pub async fn prepare(
    state: &AppState,
    caller: &Caller,
    org: Uuid,
    conversation_id: Uuid,
    new: &NewMessage,
) -> Result<(Prepared, OrgTx)> {
    // Not a `write` for the binding: the storage check is app.start_ai_reply's, with the plan
    // it reads anyway.
    let mut tx = OrgTx::new(caller.begin_in(state, org, Module::Ai, false).await?, org);
    let tool_name = new.tool.as_deref().unwrap_or(CHAT_TOOL);
    let max_tokens = new
        .max_tokens
        .unwrap_or(state.config.ai.max_output_tokens)
        .min(state.config.ai.max_output_tokens);
    let count = |bytes: usize| i64::try_from(bytes).unwrap_or(i64::MAX);
    let message_id = Uuid::now_v7();
    let mut start = store::start_turn(
        &mut tx,
        &store::TurnRequest {
            conversation: conversation_id,
            tool: tool_name,
            message_id,
            content: &new.content,
            kpi: new.kpi_id,
            fixed_tokens: count(
                SYSTEM.len() + provider::FRAME_TOKENS + new.content.len() + provider::TURN_TOKENS,
            ) + i64::from(max_tokens),
            turn_tokens: count(provider::TURN_TOKENS),
            instructions_tokens: count(TASK_HEADING.len()),
            summary_tokens: count(KPI_HEADING.len().max(RECORD_HEADING.len()) + SUMMARY_BYTES),
        },
    )
    .await?;
    // What the request lacks, in this order (the statement wrote nothing then).
    if !start.member {
        return Err(Error::Forbidden("viewers do not talk to the assistant"));
    }
    if !start.mine {
        return Err(Error::Forbidden("only its author talks in a conversation"));
    }
    let configuration = start
        .tool_configuration
        .take()
        .ok_or_else(|| Error::invalid("tool", "no active tool of the catalog has this name"))?;
    let conversation = &start.conversation;
    match configuration.get("context").and_then(|c| c.as_str()) {
        Some("project") if conversation.context_type != ContextType::Project => {
            return Err(Error::invalid(
                "tool",
                "works in a conversation about a project",
            ));
        }
        Some("kpi") if new.kpi_id.is_none() => {
            return Err(Error::invalid("kpi_id", "names the KPI this tool explains"));
        }
        Some("kpi") if !start.kpi_found => {
            return Err(Error::invalid(
                "kpi_id",
                "no KPI of this organization has this id",
            ));
        }
        _ => {}
    }
    let (Some(reserved), Some(reservation), Some(stored_at)) =
        (start.reserved, start.reservation, start.stored_at)
    else {
        return Err(Error::Internal(
            "a turn that passed its checks was not started".into(),
        ));
    };

    // What the tool needs and what the model is told come from the catalog.
    let mut system = SYSTEM.to_owned();
    if let Some(instructions) = configuration.get("instructions").and_then(|i| i.as_str()) {
        system.push_str(TASK_HEADING);
        system.push_str(instructions);
    }
    let mut summarised = false;
    if let (Some("kpi"), Some(kpi)) = (
        configuration.get("context").and_then(|c| c.as_str()),
        new.kpi_id,
    ) {
        let summary = match context::kpi(&mut tx, kpi).await {
            Err(Error::NotFound) => {
                return Err(Error::invalid(
                    "kpi_id",
                    "no KPI of this organization has this id",
                ))
            }
            other => other?,
        };
        push_summary(&mut system, KPI_HEADING, &summary);
        summarised = true;
    }
    if let Some(summary) = context::summary(&mut tx, conversation).await? {
        push_summary(&mut system, RECORD_HEADING, &summary);
        summarised = true;
    }

    let mut turns: Vec<(Speaker, String)> = start
        .history()
        .into_iter()
        .map(|(role, content)| {
            let speaker = if role == "assistant" {
                Speaker::Assistant
            } else {
                Speaker::User
            };
            (speaker, content)
        })
        .collect();
    // The first message names an untitled conversation when the reply is settled.
    let title = (turns.is_empty() && start.conversation.title == store::UNTITLED)
        .then(|| store::title_of(&new.content));
    turns.push((Speaker::User, new.content.clone()));
    let prompt = Prompt {
        system,
        turns,
        max_tokens,
    };
    // The statement reserved the prompt's bound (a summary's most where there is one): less
    // would let concurrent replies pass the budget.
    let bound = prompt.token_bound();
    if bound > reserved {
        return Err(Error::Internal(format!(
            "the turn reserved {reserved} tokens for a prompt bound to {bound}"
        )));
    }
    debug_assert!(
        summarised || bound == reserved,
        "the turn reserved {reserved} tokens for a prompt bound to {bound}"
    );
    let message = Message {
        id: message_id,
        role: "user".into(),
        content: new.content.clone(),
        status: "complete".into(),
        model: None,
        input_tokens: None,
        output_tokens: None,
        created_at: stored_at,
    };
    // Checked last, like a plan's refusal before it: what a request lacks comes first (422,
    // then 402), and returning drops the transaction, so nothing of this turn stays.
    let provider = state
        .config
        .ai
        .provider(start.conversation.ai_model)
        .cloned()
        .ok_or(Error::NotConfigured(
            "no AI provider is configured for this conversation's model",
        ))?;
    let prepared = Prepared {
        org,
        conversation: conversation_id,
        provider,
        prompt,
        reservation,
        message,
        reply_id: Uuid::now_v7(),
        title,
    };
    Ok((prepared, tx))
}

/// Step 2: commits step 1 while the provider is asked. The reservation was taken under the
/// organization's lock, which the commit releases, so the budget holds either way; the commit
/// does not wait for the disk (see [`store::start_turn`]). A failed commit hangs up on the
/// provider (nothing was stored); a provider's refusal releases the reservation and is 502.
pub async fn open(
    state: &AppState,
    caller: &Caller,
    prepared: &Prepared,
    tx: OrgTx,
) -> Result<ReplyStream> {
    let (committed, opened) = tokio::join!(
        tx.commit(),
        provider::open(
            &state.ai_http,
            &prepared.provider,
            &prepared.prompt,
            state.config.ai.idle_timeout,
        )
    );
    committed?;
    match opened {
        Ok(stream) => Ok(stream),
        Err(failure) => {
            tracing::warn!(error = %failure, "an AI provider refused a reply");
            if let Err(e) = settle_only(state, caller, prepared, 0, 0).await {
                tracing::error!(error = %e, "releasing a reservation failed (it expires)");
            }
            Err(Error::Provider(failure.to_string()))
        }
    }
}

/// Step 3: relays the reply to `sender` until it ends, the provider fails or the client leaves
/// (`sender` closed); then stores it and settles.
pub async fn relay(
    state: AppState,
    caller: Caller,
    prepared: Prepared,
    mut stream: ReplyStream,
    sender: mpsc::Sender<Relayed>,
) {
    let mut text = String::new();
    let mut failure = None;
    let mut left = false;
    loop {
        tokio::select! {
            biased;
            () = sender.closed() => {
                left = true;
                break;
            }
            piece = stream.next() => match piece {
                Ok(Some(piece)) => {
                    text.push_str(&piece);
                    if sender.send(Relayed::Delta(piece)).await.is_err() {
                        left = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
    }
    let usage = stream.usage.clone();
    // Closes the provider's connection: a reply nobody reads stops costing.
    drop(stream);
    let complete = failure.is_none() && !left;
    if let Some(failure) = &failure {
        tracing::warn!(error = %failure, "an AI provider failed mid-reply");
    }
    // Counts reported for a reply cut short are the provider's so far; missing ones estimated.
    let input = usage
        .input_tokens
        .unwrap_or_else(|| prepared.prompt.estimated_input_tokens());
    let output = match usage.output_tokens {
        Some(n) if complete => n,
        reported => reported.unwrap_or(0).max(provider::estimate_tokens(&text)),
    };
    let model = usage
        .model
        .unwrap_or_else(|| prepared.provider.model.clone());
    let stored = store_reply(
        &state,
        &caller,
        &prepared,
        &Reply {
            text: &text,
            complete,
            model: &model,
            input,
            output,
        },
    )
    .await;
    if let Some(failure) = failure {
        let _ = sender.send(Relayed::Failed(failure)).await;
    }
    let _ = sender
        .send(match stored {
            Ok(message) => Relayed::Done(message),
            Err(e) => Relayed::Lost(e),
        })
        .await;
}

struct Reply<'a> {
    text: &'a str,
    complete: bool,
    model: &'a str,
    input: i64,
    output: i64,
}

/// Stores the reply and settles its tokens in one transaction; when the reply cannot be stored
/// (the conversation was deleted meanwhile), the tokens are settled alone: they were spent.
async fn store_reply(
    state: &AppState,
    caller: &Caller,
    prepared: &Prepared,
    reply: &Reply<'_>,
) -> Result<Message> {
    let stored = async {
        let mut tx = OrgTx::new(caller.begin(state, Some(prepared.org)).await?, prepared.org);
        let message = store::add_message(
            &mut tx,
            &NewTurn {
                id: prepared.reply_id,
                conversation: prepared.conversation,
                role: "assistant",
                content: reply.text,
                status: if reply.complete {
                    "complete"
                } else {
                    "partial"
                },
                model: Some(reply.model),
                input_tokens: Some(reply.input),
                output_tokens: Some(reply.output),
            },
        )
        .await?;
        store::settle(
            &mut tx,
            &prepared.settlement(reply.model, reply.input, reply.output),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, Error>(message)
    }
    .await;
    if let Err(e) = &stored {
        tracing::warn!(error = %e, "storing a reply failed; settling its tokens alone");
        if let Err(e) = settle_only(state, caller, prepared, reply.input, reply.output).await {
            tracing::error!(error = %e, "settling a reply's tokens failed (its reservation expires)");
        }
    }
    stored
}

async fn settle_only(
    state: &AppState,
    caller: &Caller,
    prepared: &Prepared,
    input: i64,
    output: i64,
) -> Result<()> {
    let mut tx = OrgTx::new(caller.begin(state, Some(prepared.org)).await?, prepared.org);
    store::settle(
        &mut tx,
        &prepared.settlement(&prepared.provider.model, input, output),
    )
    .await?;
    tx.commit().await
}
