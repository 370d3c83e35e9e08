//! `SubscribeUSK` / `UnsubscribeUSK`: a client is told each time a newer
//! edition of a USK appears (`SubscribedUSKUpdate`).
//!
//! A subscription is a request of its connection (it ends with it, or on
//! `UnsubscribeUSK` / `RemoveRequest`). It searches for the newest edition
//! at once (O(log E) SSK fetches, `signed::newest_edition`), then again
//! after 5 s, doubling the pause while nothing new turns up, up to 5
//! minutes, and back to 5 s after each new edition: a quiet key costs a
//! few requests an hour. Each search starts past the newest edition seen.

use std::time::Duration;

use warren_crypto::{AnyUri, Edition, UskUri};

use super::codes::Protocol;
use super::get::strip_freenet;
use super::message::Message;
use super::persist::Resume;
use super::queue::Description;
use super::session::{Flow, Reply, Session};
use crate::client::ClientError;
use crate::driver::NodeHandle;
use crate::signed;

/// Pause after a search that found a new edition (and the shortest).
const MIN_POLL: Duration = Duration::from_secs(5);
/// Longest pause between searches of a quiet key.
const MAX_POLL: Duration = Duration::from_secs(300);

impl Session {
    pub(super) async fn subscribe_usk(&mut self, message: &Message) -> Flow {
        let Some(reply) = self.claim(message).await else {
            return Flow::Continue;
        };
        let Some(raw) = message.get("URI") else {
            self.refuse(message, Protocol::MissingField, "URI").await;
            return Flow::Continue;
        };
        let Ok(AnyUri::Usk(usk)) = strip_freenet(raw).parse::<AnyUri>() else {
            let why = "SubscribeUSK needs a Warren USK request URI (USK@…/name/N)";
            self.refuse(message, Protocol::InvalidField, why).await;
            return Flow::Continue;
        };
        let subscribed = reply
            .message("SubscribedUSK")
            .with("URI", usk.to_string())
            .with("DontPoll", false);
        if !reply.send(subscribed).await {
            return Flow::Continue;
        }
        let description = Description {
            kind: "SubscribeUSK",
            fields: vec![("URI".to_owned(), usk.to_string())],
            direct_uri: None,
            resume: Resume::NotResumable,
        };
        let node = self.shared.node.clone();
        let task_reply = reply.clone();
        self.start(&reply, description, async move {
            watch(node, task_reply, usk).await;
        })
        .await;
        Flow::Continue
    }

    /// `UnsubscribeUSK`: the subscription ends; nothing is answered (as in
    /// Fred), an unknown one included.
    pub(super) fn unsubscribe_usk(&mut self, message: &Message) -> Flow {
        if let Some(identifier) = message.get("Identifier") {
            self.end_request(identifier);
        }
        Flow::Continue
    }
}

/// Searches for newer editions of `usk` until aborted (or the node stops),
/// telling the client of each.
async fn watch(node: NodeHandle, reply: Reply, usk: UskUri) {
    let mut next = usk.edition.start();
    let mut pause = MIN_POLL;
    loop {
        let from = usk.clone().with_edition(Edition::AtLeast(next));
        match signed::newest_edition(&node, &from).await {
            Ok((Some((edition, _)), _)) => {
                let found = usk.clone().with_edition(Edition::AtLeast(edition));
                let update = reply
                    .message("SubscribedUSKUpdate")
                    .with("URI", found.to_string())
                    .with("Edition", edition)
                    .with("NewKnownGood", true)
                    .with("NewSlotToo", true);
                if !reply.send(update).await {
                    return;
                }
                next = edition + 1;
                pause = MIN_POLL;
            }
            Err(ClientError::Stopped) => return,
            // Nothing newer, or overloaded, or a failed probe: again later,
            // more slowly.
            Ok((None, _)) | Err(_) => pause = (pause * 2).min(MAX_POLL),
        }
        tokio::time::sleep(pause).await;
    }
}
