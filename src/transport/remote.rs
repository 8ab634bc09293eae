//! Typed remote events and functions on the App: registration, and the typed messages handlers
//! read.
//!
//! A game registers its message types with [`RemoteApp::add_remote_event`] and
//! [`RemoteApp::add_remote_function`] (in a function both its server and its client call). On the
//! server, the transport decodes and validates each message by the registered type, the security
//! gate rate-limits it and checks its permission, and only then does it reach handlers as
//! [`FromClient<T>`] (events) or [`Call<T>`] (functions), answered with [`ServerCore::reply`]. On
//! the client, [`ClientCore::send`] and [`ClientCore::call`] send; [`FromServer<T>`] and
//! [`Answer<T>`] arrive.

use std::collections::HashMap;

use bevy::ecs::schedule::ScheduleLabel;
use bevy::prelude::*;

use super::{ClientCore, ServerCore};
use crate::protocol::{
    self, AnyMessage, Remote, RemoteError, RemoteFunction, RemoteTable, RequestId, builtin,
};
use crate::stages::{BetweenTicks, ClientSystems, ServerSystems};

/// One message admitted by the gate: client, call id (`None`: an event), the decoded value.
type Admission = (u64, Option<RequestId>, AnyMessage);
/// An event as the client received it: arrived sealed, its encoded value.
type RawEvent = (bool, Vec<u8>);
/// A call's id and its encoded result, as the client received it.
type RawAnswer = (RequestId, Result<Vec<u8>, RemoteError>);

/// How the messages of one registered kind become typed Bevy messages.
#[derive(Clone, Copy)]
struct Deliverers {
    /// Admitted on the server: `FromClient<T>` or `Call<T>`.
    server: fn(&mut World, Vec<Admission>),
    /// Events received on the client: `FromServer<T>` (events only).
    client_events: Option<fn(&mut World, Vec<RawEvent>)>,
    /// Answers received on the client: `Answer<T>` (functions only).
    client_answers: Option<fn(&mut World, Vec<RawAnswer>)>,
}

/// The message types registered in this app, and how each becomes a typed message. One system
/// per side delivers every kind (a system per kind cost an idle tick more than the messages).
#[derive(Resource, Default, Clone, Deref)]
pub struct RemoteRegistry {
    #[deref]
    table: RemoteTable,
    deliverers: HashMap<u32, Deliverers>,
}

impl std::fmt::Debug for RemoteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.table.fmt(f)
    }
}

/// How a game registers its messages: called on the server's and the client's App alike (and on
/// a scratch App, to learn the protocol id before the real one is built).
pub type RegisterProtocol = fn(&mut App);

/// Registers the framework's own messages ([`crate::protocol::builtin`]) and then the game's.
pub struct ProtocolPlugin {
    /// The game's registrations.
    pub game: RegisterProtocol,
}

impl Plugin for ProtocolPlugin {
    fn build(&self, app: &mut App) {
        register_builtin(app);
        (self.game)(app);
    }

    /// Play mode adds it with the server and with the client; registering twice is a no-op.
    fn is_unique(&self) -> bool {
        false
    }
}

fn register_builtin(app: &mut App) {
    app.add_remote_event::<builtin::Heartbeat>()
        .add_remote_event::<builtin::Chat>()
        .add_remote_function::<builtin::Echo>()
        .add_remote_function::<builtin::SecureEcho>()
        .add_remote_function::<builtin::ServerStats>()
        .add_remote_function::<builtin::SetConfig>()
        .add_remote_function::<builtin::Kick>()
        .add_remote_function::<builtin::SetAccountDisabled>()
        .add_remote_function::<builtin::Ban>()
        .add_remote_function::<builtin::Unban>()
        .add_remote_function::<builtin::SetRole>()
        .add_remote_function::<builtin::ReloadConfig>()
        .add_remote_function::<builtin::SecurityStats>()
        .add_remote_function::<builtin::Health>()
        .add_remote_function::<builtin::ListConflicts>()
        .add_remote_function::<builtin::Drain>()
        .add_remote_event::<builtin::MoveToServer>()
        .add_remote_function::<builtin::ResolveConflict>();
}

/// The message table of an app registering the framework's messages and `game`'s.
pub fn protocol_table(game: RegisterProtocol) -> RemoteTable {
    let mut app = App::new();
    app.add_plugins(ProtocolPlugin { game });
    app.world()
        .get_resource::<RemoteRegistry>()
        .map(|r| r.table.clone())
        .unwrap_or_default()
}

/// A remote event from a client, through the security gate.
#[derive(Message, Debug, Clone)]
pub struct FromClient<T: Remote> {
    /// Sender (renet client id).
    pub client: u64,
    /// The event.
    pub message: T,
}

/// A remote function call from a client, through the security gate; answer it with
/// [`ServerCore::reply`].
#[derive(Message, Debug, Clone)]
pub struct Call<T: RemoteFunction> {
    /// Caller (renet client id).
    pub client: u64,
    /// The call's id.
    pub id: RequestId,
    /// What is asked.
    pub request: T,
}

/// A remote event from the server (client side).
#[derive(Message, Debug, Clone)]
pub struct FromServer<T: Remote>(pub T);

/// A remote function finished (client side): its answer, a rejection, a timeout or a disconnect.
#[derive(Message, Debug, Clone)]
pub struct Answer<T: RemoteFunction> {
    /// The id [`ClientCore::call`] returned.
    pub id: RequestId,
    /// The result.
    pub result: Result<T::Response, RemoteError>,
}

/// Messages the security gate let through, by kind, waiting to become typed messages. Only the
/// gate (`security::admit`) pushes here.
#[derive(Resource, Default)]
pub struct Admitted(HashMap<u32, Vec<Admission>>);

impl Admitted {
    /// Lets one decoded message through.
    pub fn admit(&mut self, kind: u32, client: u64, id: Option<RequestId>, body: AnyMessage) {
        self.0.entry(kind).or_default().push((client, id, body));
    }
}

/// What the client received, by kind, waiting to become typed messages.
#[derive(Resource, Default)]
pub struct ClientInbox {
    events: HashMap<u32, Vec<RawEvent>>,
    answers: HashMap<u32, Vec<RawAnswer>>,
}

impl ClientInbox {
    pub(super) fn event(&mut self, kind: u32, sealed: bool, payload: Vec<u8>) {
        self.events.entry(kind).or_default().push((sealed, payload));
    }

    pub(super) fn answer(
        &mut self,
        kind: u32,
        id: RequestId,
        result: Result<Vec<u8>, RemoteError>,
    ) {
        self.answers.entry(kind).or_default().push((id, result));
    }
}

/// Where typed messages are made: on the server after the gate, on the client after receive.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemoteSystems {
    /// The security gate (server): decoded messages are rate-limited, checked and admitted.
    Gate,
    /// Admitted (server) or received (client) messages become typed messages.
    Deliver,
}

/// Registration of typed remote messages on an App.
pub trait RemoteApp {
    /// Registers a one-way event type, sent by either side.
    fn add_remote_event<T: Remote>(&mut self) -> &mut Self;
    /// Registers a remote function type (a client calls, the server answers).
    fn add_remote_function<T: RemoteFunction>(&mut self) -> &mut Self;
}

impl RemoteApp for App {
    fn add_remote_event<T: Remote>(&mut self) -> &mut Self {
        let added = register(
            self,
            |t| t.add_event::<T>(),
            T::KIND,
            Deliverers {
                server: deliver_events::<T>,
                client_events: Some(deliver_server_events::<T>),
                client_answers: None,
            },
        );
        if added {
            self.add_message::<FromClient<T>>()
                .add_message::<FromServer<T>>();
        }
        self
    }

    fn add_remote_function<T: RemoteFunction>(&mut self) -> &mut Self {
        let added = register(
            self,
            |t| t.add_function::<T>(),
            T::KIND,
            Deliverers {
                server: deliver_calls::<T>,
                client_events: None,
                client_answers: Some(deliver_answers::<T>),
            },
        );
        if added {
            self.add_message::<Call<T>>().add_message::<Answer<T>>();
        }
        self
    }
}

/// Adds a kind to the app's registry (the delivery systems with the first); false if it was
/// there already.
fn register(
    app: &mut App,
    add: impl FnOnce(&mut RemoteTable) -> bool,
    kind: u32,
    deliverers: Deliverers,
) -> bool {
    let first = !app.world().contains_resource::<RemoteRegistry>()
        || app
            .world()
            .resource::<RemoteRegistry>()
            .deliverers
            .is_empty();
    let mut registry = app.world_mut().get_resource_or_init::<RemoteRegistry>();
    if !add(&mut registry.table) {
        return false;
    }
    registry.deliverers.insert(kind, deliverers);
    if first {
        // The server admits in the tick and between ticks (see `stages`).
        for schedule in [PreUpdate.intern(), BetweenTicks.intern()] {
            app.configure_sets(schedule, RemoteSystems::Gate.before(RemoteSystems::Deliver))
                .add_systems(
                    schedule,
                    deliver_admitted
                        .in_set(RemoteSystems::Deliver)
                        .in_set(ServerSystems::Admit)
                        .run_if(resource_exists::<Admitted>),
                );
        }
        app.add_systems(
            PreUpdate,
            deliver_received
                .in_set(RemoteSystems::Deliver)
                .in_set(ClientSystems::Receive)
                .run_if(resource_exists::<ClientInbox>),
        );
    }
    true
}

/// Every admitted message becomes its type's `FromClient<T>` or `Call<T>`.
fn deliver_admitted(world: &mut World) {
    deliver_waiting(
        world,
        |w| {
            w.get_resource_mut::<Admitted>()
                .map(|mut a| take_waiting(&mut a.0))
        },
        |d| Some(d.server),
    );
}

/// Every event and answer the client received becomes its type's `FromServer<T>` or
/// `Answer<T>`.
fn deliver_received(world: &mut World) {
    deliver_waiting(
        world,
        |w| {
            w.get_resource_mut::<ClientInbox>()
                .map(|mut i| take_waiting(&mut i.events))
        },
        |d| d.client_events,
    );
    deliver_waiting(
        world,
        |w| {
            w.get_resource_mut::<ClientInbox>()
                .map(|mut i| take_waiting(&mut i.answers))
        },
        |d| d.client_answers,
    );
}

/// The non-empty batches of a queue by kind, taken out of it.
fn take_waiting<Item>(queue: &mut HashMap<u32, Vec<Item>>) -> Vec<(u32, Vec<Item>)> {
    queue
        .iter_mut()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, std::mem::take(v)))
        .collect()
}

/// Hands each batch `take` finds to the deliverer `pick` chooses for its kind.
fn deliver_waiting<Item>(
    world: &mut World,
    take: impl FnOnce(&mut World) -> Option<Vec<(u32, Vec<Item>)>>,
    pick: impl Fn(&Deliverers) -> Option<fn(&mut World, Vec<Item>)>,
) {
    let batches = take(world).unwrap_or_default();
    if batches.is_empty() {
        return;
    }
    let work: Vec<_> = {
        let registry = world.resource::<RemoteRegistry>();
        batches
            .into_iter()
            .filter_map(|(kind, items)| {
                registry
                    .deliverers
                    .get(&kind)
                    .and_then(&pick)
                    .map(|deliver| (deliver, items))
            })
            .collect()
    };
    for (deliver, items) in work {
        deliver(world, items);
    }
}

fn deliver_events<T: Remote>(world: &mut World, items: Vec<Admission>) {
    for (client, _, body) in items {
        if let Ok(message) = body.downcast::<T>() {
            world.write_message(FromClient {
                client,
                message: *message,
            });
        }
    }
}

fn deliver_calls<T: RemoteFunction>(world: &mut World, items: Vec<Admission>) {
    for (client, id, body) in items {
        if let (Ok(request), Some(id)) = (body.downcast::<T>(), id) {
            world.write_message(Call {
                client,
                id,
                request: *request,
            });
        }
    }
}

fn deliver_server_events<T: Remote>(world: &mut World, items: Vec<RawEvent>) {
    for (sealed, payload) in items {
        if sealed != T::SEALED {
            warn!(
                "refused a {} from the server: sealed {sealed}, registered sealed {}",
                T::NAME,
                T::SEALED
            );
            continue;
        }
        match protocol::decode::<T>(&payload) {
            Ok(value) => {
                world.write_message(FromServer(value));
            }
            Err(e) => warn!("refused a {} from the server: {e}", T::NAME),
        }
    }
}

fn deliver_answers<T: RemoteFunction>(world: &mut World, items: Vec<RawAnswer>) {
    for (id, result) in items {
        world.write_message(Answer::<T> {
            id,
            result: protocol::decode_response::<T>(result),
        });
    }
}

/// Typed sending on the server's core.
impl ServerCore {
    /// Answers a remote function call (sealed if its type is).
    pub fn reply<T: RemoteFunction>(
        &mut self,
        call: &Call<T>,
        result: Result<T::Response, RemoteError>,
    ) {
        self.reply_to::<T>(call.client, call.id, result);
    }

    /// Answers call `id` of `client`, of type `T` (for answers given after the call's message
    /// was read, e.g. when a load lands).
    pub fn reply_to<T: RemoteFunction>(
        &mut self,
        client: u64,
        id: RequestId,
        result: Result<T::Response, RemoteError>,
    ) {
        let encoded = match result {
            Ok(response) => protocol::encode(&response).map_err(|e| {
                error!("cannot encode the answer to {}: {e}", T::NAME);
                RemoteError::Rejected(format!("the answer could not be encoded: {e}"))
            }),
            Err(e) => Err(e),
        };
        self.respond_raw(client, id, T::SEALED, encoded);
    }

    /// Sends a remote event to one client (sealed if its type is).
    pub fn send<T: Remote>(&mut self, client: u64, message: &T) {
        self.send_to(Some(client), message);
    }

    /// Sends a remote event to every client in session.
    pub fn broadcast<T: Remote>(&mut self, message: &T) {
        self.send_to(None, message);
    }

    fn send_to<T: Remote>(&mut self, client: Option<u64>, message: &T) {
        match protocol::encode(message) {
            Ok(payload) => self.event_raw(client, T::KIND, T::SEALED, T::DELIVERY, payload),
            Err(e) => error!("cannot encode a {}: {e}", T::NAME),
        }
    }
}

/// Typed sending on the client's core.
impl ClientCore {
    /// Sends a one-way event (sealed if its type is).
    pub fn send<T: Remote>(&mut self, message: &T) {
        match protocol::encode(message) {
            Ok(payload) => self.event_raw(T::KIND, T::SEALED, T::DELIVERY, payload),
            Err(e) => error!("cannot encode a {}: {e}", T::NAME),
        }
    }

    /// Calls a remote function; the answer arrives as [`Answer<T>`] (or a
    /// [`super::ClientNotice::Rpc`] to decode with [`protocol::decode_response`]) with this id.
    pub fn call<T: RemoteFunction>(&mut self, request: &T, now: std::time::Duration) -> RequestId {
        let payload = protocol::encode(request).map_err(|e| e.to_string());
        self.call_raw(T::KIND, T::SEALED, payload, now)
    }
}
