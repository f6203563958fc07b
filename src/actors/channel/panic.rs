//! A panic in a channel actor's handling drops the actor (actix's `Supervisor` restarts only an
//! actor that stops): a panic hook remembers the message on the actor's thread, and the actor's
//! [`PanicWatch`], dropped with it, hands the message to the supervisor's [`OnPanic`].

use std::sync::Arc;

/// What happens when a panic in a channel actor's handling drops it (actix's `Supervisor`
/// restarts an actor that stops, not one that panics): called with the panic's message, on the
/// actor's thread, as the actor is dropped. The supervisor marks the channel ERRORED and starts
/// it again from its ledger.
pub type OnPanic = Arc<dyn Fn(String) + Send + Sync>;

/// Owned by the actor; when dropped after a panic on its thread, calls its [`OnPanic`].
pub(super) struct PanicWatch(pub(super) OnPanic);

impl Drop for PanicWatch {
    fn drop(&mut self) {
        if let Some(message) = LAST_PANIC.with(|p| p.borrow_mut().take()) {
            (self.0)(message);
        }
    }
}

thread_local! {
    /// The last panic on this thread not yet reported by a [`PanicWatch`].
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once) a panic hook that remembers each panic's message on its thread for the
/// channel actor the panic drops, then runs the hook that was there (which prints it).
pub fn capture_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let what = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic without a message");
            let message = match info.location() {
                Some(at) => format!("{what} at {}:{}", at.file(), at.line()),
                None => what.to_owned(),
            };
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
            previous(info);
        }));
    });
}
