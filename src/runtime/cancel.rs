//! A cancellation signal shared by the executor and every running step: set once when the
//! run must stop (a step failed, or SIGINT/SIGTERM arrived); steps notice it at safe points.

use tokio::sync::watch;

/// A cloneable stop signal.
#[derive(Debug, Clone)]
pub struct Cancel {
    sender: std::sync::Arc<watch::Sender<Option<String>>>,
    receiver: watch::Receiver<Option<String>>,
}

impl Default for Cancel {
    fn default() -> Self {
        let (sender, receiver) = watch::channel(None);
        Self {
            sender: std::sync::Arc::new(sender),
            receiver,
        }
    }
}

impl Cancel {
    /// Ask everything to stop, saying why (the first reason wins).
    pub fn cancel(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.sender.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Why the run is stopping, if it is.
    pub fn reason(&self) -> Option<String> {
        self.receiver.borrow().clone()
    }

    /// Whether the run is stopping.
    pub fn is_cancelled(&self) -> bool {
        self.receiver.borrow().is_some()
    }

    /// Resolves when the run is asked to stop.
    pub async fn cancelled(&self) {
        let mut receiver = self.receiver.clone();
        let _ = receiver.wait_for(Option::is_some).await;
    }
}
