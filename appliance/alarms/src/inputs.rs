//! The physical inputs' part in the alarms: the acknowledge button and the
//! door contact.
//!
//! The outputs runner debounces the inputs and silences its own sirens on a
//! button press (no software in between); here the press also marks every open
//! event acknowledged, through the dispatcher's one acknowledge path, and the
//! door contact's level is handed to the door rules of the analysis task.

use std::future::Future;
use std::pin::Pin;

use safe_yolo_outputs::{InputEvent, InputRole, OutputsHandle};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::dispatch::Dispatcher;
use crate::interlocks::Interlocks;
use safe_yolo_domain::Named;
use safe_yolo_store::{AuditResult, NewAudit, Storage, now_ms};

/// The `gpio` interlock the machine-state contact sets, and where its changes are
/// audited (none in unit tests).
struct Gpio {
    interlocks: Interlocks,
    storage: Option<Storage>,
}

/// Who the button acknowledges as, in the events and the audit.
pub const ACK_BUTTON: &str = "ack-button";

type AckAll = Box<dyn Fn() -> Pin<Box<dyn Future<Output = usize> + Send>> + Send + Sync>;

/// The running input routing.
#[derive(Debug)]
pub struct InputRouting {
    door: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl InputRouting {
    /// Routes the inputs of `outputs`: a button press acknowledges every open
    /// event through `dispatcher`; the door contact's level is kept for the
    /// door rules ([`InputRouting::door`]), starting from its level now.
    /// The machine-state contact sets the `gpio` interlock of `interlocks` (each
    /// change audited in `storage`).
    pub fn start(
        outputs: &OutputsHandle,
        dispatcher: Dispatcher,
        interlocks: Interlocks,
        storage: Storage,
    ) -> Self {
        let status = outputs.status();
        let door_open = status
            .inputs
            .iter()
            .any(|i| i.role == InputRole::DoorContact && i.active);
        // The machine-state contact's level now sets the gpio interlock at once.
        if let (Some(id), Some(i)) = (
            interlocks.gpio(),
            status
                .inputs
                .iter()
                .find(|i| i.role == InputRole::MachineState),
        ) {
            interlocks.set(&id, i.active, "gpio");
        }
        let gpio = Gpio {
            interlocks,
            storage: Some(storage),
        };
        let ack: AckAll = Box::new(move || {
            let d = dispatcher.clone();
            Box::pin(async move { d.acknowledge_all(ACK_BUTTON).await })
        });
        Self::from_events(outputs.subscribe_inputs(), door_open, ack, gpio)
    }

    fn from_events(
        mut events: broadcast::Receiver<InputEvent>,
        door_open: bool,
        ack_all: AckAll,
        gpio: Gpio,
    ) -> Self {
        let gpio_id = gpio.interlocks.gpio();
        let (door_tx, door) = watch::channel(door_open);
        let task = tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(ev) if ev.role == InputRole::AckButton && ev.active => {
                        let n = ack_all().await;
                        tracing::info!(events = n, "acknowledge button pressed");
                    }
                    Ok(ev) if ev.role == InputRole::DoorContact => {
                        door_tx.send_replace(ev.active);
                        tracing::info!(open = ev.active, "door contact changed");
                    }
                    Ok(ev) if ev.role == InputRole::MachineState => {
                        if let Some(id) = &gpio_id
                            && let Some(change) = gpio.interlocks.set(id, ev.active, "gpio")
                            && let Some(storage) = &gpio.storage
                        {
                            storage
                                .audit_best_effort(NewAudit {
                                    at: now_ms(),
                                    actor: "gpio".into(),
                                    role: None,
                                    source: Some("outputs.machine_state".into()),
                                    action: "interlock.set".into(),
                                    target: format!("interlock/{id}"),
                                    before: Some(change.before.as_str().to_owned()),
                                    after: Some(change.after.as_str().to_owned()),
                                    result: AuditResult::Ok,
                                })
                                .await;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "input events were missed");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Self { door, task }
    }

    /// The door contact's debounced level (`true`: open; always `false`
    /// without a door contact).
    pub fn door(&self) -> watch::Receiver<bool> {
        self.door.clone()
    }

    /// Stops routing (a press after this acknowledges nothing more).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn event(role: InputRole, active: bool) -> InputEvent {
        InputEvent {
            role,
            active,
            at_ms: 0,
        }
    }

    fn no_gpio() -> Gpio {
        Gpio {
            interlocks: Interlocks::new(&[]),
            storage: None,
        }
    }

    fn counting() -> (Arc<AtomicUsize>, AckAll) {
        let presses = Arc::new(AtomicUsize::new(0));
        let p = Arc::clone(&presses);
        let ack: AckAll = Box::new(move || {
            let p = Arc::clone(&p);
            Box::pin(async move { p.fetch_add(1, Ordering::SeqCst) + 1 })
        });
        (presses, ack)
    }

    #[tokio::test]
    async fn a_press_acknowledges_and_a_release_does_not() {
        let (tx, rx) = broadcast::channel(8);
        let (presses, ack) = counting();
        let routing = InputRouting::from_events(rx, false, ack, no_gpio());
        tx.send(event(InputRole::AckButton, true)).unwrap();
        tx.send(event(InputRole::AckButton, false)).unwrap();
        tx.send(event(InputRole::AckButton, true)).unwrap();
        drop(tx);
        // The channel closes after the events: the task ends by itself.
        let InputRouting { door, task } = routing;
        task.await.unwrap();
        assert_eq!(presses.load(Ordering::SeqCst), 2);
        assert!(!*door.borrow());
    }

    #[tokio::test]
    async fn the_door_level_follows_the_contact_from_its_level_at_start() {
        let (tx, rx) = broadcast::channel(8);
        let (presses, ack) = counting();
        let routing = InputRouting::from_events(rx, true, ack, no_gpio());
        let mut door = routing.door();
        assert!(*door.borrow_and_update(), "starts open");
        tx.send(event(InputRole::DoorContact, false)).unwrap();
        door.changed().await.unwrap();
        assert!(!*door.borrow_and_update());
        tx.send(event(InputRole::DoorContact, true)).unwrap();
        door.changed().await.unwrap();
        assert!(*door.borrow_and_update());
        assert_eq!(
            presses.load(Ordering::SeqCst),
            0,
            "the door acknowledges nothing"
        );
        routing.stop().await;
        // Stopped: the sender is gone with the task.
        assert!(door.changed().await.is_err());
    }

    #[tokio::test]
    async fn the_machine_state_contact_sets_the_gpio_interlock() {
        use safe_yolo_config::{InterlockConfig, InterlockSource};
        use safe_yolo_domain::InterlockId;
        use safe_yolo_rules::InterlockLevel;
        let id = InterlockId::new("press-running").unwrap();
        let interlocks = Interlocks::new(&[InterlockConfig {
            id: id.clone(),
            name: "press".into(),
            source: InterlockSource::Gpio,
            stale_after: None,
        }]);
        let (tx, rx) = broadcast::channel(8);
        let (presses, ack) = counting();
        let routing = InputRouting::from_events(
            rx,
            false,
            ack,
            Gpio {
                interlocks: interlocks.clone(),
                storage: None,
            },
        );
        let mut levels = interlocks.watch();
        tx.send(event(InputRole::MachineState, false)).unwrap();
        levels.changed().await.unwrap();
        assert_eq!(interlocks.level(&id), InterlockLevel::Disarmed);
        tx.send(event(InputRole::MachineState, true)).unwrap();
        levels.changed().await.unwrap();
        assert_eq!(interlocks.level(&id), InterlockLevel::Armed);
        routing.stop().await;
        assert_eq!(presses.load(Ordering::SeqCst), 0);
    }
}
