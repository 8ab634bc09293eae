//! The window's login screen (`client --login HOST` without `--user`): username, password, Log in
//! and Register, and the service's answer. Typing goes to the focused field (Tab moves, a click
//! picks one; the password shows as stars), Enter logs in. A grant dials the game server it names
//! (the transport's `Redial`) and the screen goes away; an error stays on it.

use bevy::input::ButtonState;
use bevy::input::keyboard::{Key, KeyboardInput};
use bevy::prelude::*;
use bevy::tasks::{IoTaskPool, Task};

use super::ServerAddress;
use crate::accounts::login::{Credentials, Grant, LoginClient, LoginError};
use crate::accounts::{PASSWORD_LEN, USERNAME_LEN};
use crate::transport::Redial;

/// Which field typing goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Field {
    /// The username.
    #[default]
    User,
    /// The password.
    Password,
}

/// What the player asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submit {
    /// Log in.
    LogIn,
    /// Register, then log in.
    Register,
}

/// The form's state, apart from the window.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoginForm {
    /// The username typed.
    pub user: String,
    /// The password typed.
    pub password: String,
    /// The focused field.
    pub focus: Field,
    /// The last error or progress line.
    pub message: String,
    /// A request is in flight.
    pub busy: bool,
}

impl LoginForm {
    /// Applies one key press; `Some` when it submits the form.
    pub fn key(&mut self, key: &Key, text: Option<&str>) -> Option<Submit> {
        if self.busy {
            return None;
        }
        match key {
            Key::Tab => {
                self.focus = match self.focus {
                    Field::User => Field::Password,
                    Field::Password => Field::User,
                };
            }
            Key::Enter => return self.submit(Submit::LogIn),
            Key::Backspace => {
                self.field().pop();
            }
            _ => {
                let limit = match self.focus {
                    Field::User => *USERNAME_LEN.end(),
                    Field::Password => *PASSWORD_LEN.end(),
                };
                for c in text.unwrap_or_default().chars().filter(|c| !c.is_control()) {
                    if self.field().chars().count() < limit {
                        self.field().push(c);
                    }
                }
            }
        }
        None
    }

    fn field(&mut self) -> &mut String {
        match self.focus {
            Field::User => &mut self.user,
            Field::Password => &mut self.password,
        }
    }

    /// Submits, unless a field is empty (then it says which).
    pub fn submit(&mut self, what: Submit) -> Option<Submit> {
        if self.busy {
            return None;
        }
        if self.user.is_empty() {
            self.message = "type your username".into();
            self.focus = Field::User;
            return None;
        }
        if self.password.is_empty() {
            self.message = "type your password".into();
            self.focus = Field::Password;
            return None;
        }
        self.busy = true;
        self.message = match what {
            Submit::LogIn => "logging in...".into(),
            Submit::Register => "registering...".into(),
        };
        Some(what)
    }

    /// The text of a field as shown: the password as stars, a bar where typing goes.
    pub fn shown(&self, field: Field) -> String {
        let mut text = match field {
            Field::User => self.user.clone(),
            Field::Password => "*".repeat(self.password.chars().count()),
        };
        if field == self.focus && !self.busy {
            text.push('|');
        }
        text
    }
}

/// The login screen (added by `client --login` with a window and no `--user`).
pub struct LoginScreenPlugin {
    /// The login service.
    pub client: LoginClient,
    /// The `--server` asked for, if any.
    pub asked: Option<std::net::SocketAddr>,
}

#[derive(Resource)]
struct Screen {
    client: LoginClient,
    asked: Option<std::net::SocketAddr>,
    form: LoginForm,
    task: Option<Task<Result<Grant, LoginError>>>,
}

#[derive(Component)]
struct LoginRoot;

#[derive(Component)]
struct FieldText(Field);

#[derive(Component)]
struct FieldBox(Field);

#[derive(Component)]
struct LoginButton(Submit);

#[derive(Component)]
struct MessageText;

impl Plugin for LoginScreenPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Screen {
            client: self.client.clone(),
            asked: self.asked,
            form: LoginForm::default(),
            task: None,
        })
        .add_message::<Redial>()
        .add_systems(Startup, spawn_screen)
        .add_systems(
            Update,
            (type_keys, clicks, finish, show)
                .chain()
                .in_set(crate::stages::ClientSystems::Handle),
        );
    }
}

const PANEL: Color = Color::srgb(0.02, 0.06, 0.12);
const BOX: Color = Color::srgb(0.05, 0.12, 0.2);
const FOCUSED: Color = Color::srgb(0.45, 0.8, 1.0);
const UNFOCUSED: Color = Color::srgb(0.2, 0.3, 0.4);
const INK: Color = Color::srgb(0.85, 0.95, 1.0);

fn label(text: &str) -> impl Bundle {
    (
        Text::new(text),
        TextFont::default().with_font_size(16.0),
        TextColor(Color::srgb(0.6, 0.75, 0.85)),
    )
}

fn field(kind: Field) -> impl Bundle {
    (
        FieldBox(kind),
        Button,
        Node {
            width: percent(100),
            min_height: px(38),
            padding: UiRect::axes(px(10), px(6)),
            border: UiRect::all(px(2)),
            margin: UiRect::bottom(px(10)),
            ..default()
        },
        BorderColor::all(UNFOCUSED),
        BackgroundColor(BOX),
        children![(
            FieldText(kind),
            Text::new(""),
            TextFont::default().with_font_size(20.0),
            TextColor(INK),
        )],
    )
}

fn button(what: Submit, text: &str) -> impl Bundle {
    (
        LoginButton(what),
        Button,
        Node {
            padding: UiRect::axes(px(18), px(8)),
            margin: UiRect::right(px(12)),
            border: UiRect::all(px(2)),
            ..default()
        },
        BorderColor::all(FOCUSED),
        BackgroundColor(Color::srgb(0.08, 0.25, 0.4)),
        children![(
            Text::new(text),
            TextFont::default().with_font_size(18.0),
            TextColor(INK),
        )],
    )
}

fn spawn_screen(mut commands: Commands, screen: Res<Screen>) {
    let title = format!("Log in to {}", screen.client.host());
    commands.spawn((
        LoginRoot,
        Node {
            position_type: PositionType::Absolute,
            width: percent(100),
            height: percent(100),
            justify_content: JustifyContent::Center,
            align_items: AlignItems::Center,
            ..default()
        },
        GlobalZIndex(100),
        children![(
            Node {
                width: px(420),
                flex_direction: FlexDirection::Column,
                padding: UiRect::all(px(24)),
                ..default()
            },
            BackgroundColor(PANEL),
            children![
                (
                    Text::new(title),
                    TextFont::default().with_font_size(24.0),
                    TextColor(INK),
                    Node {
                        margin: UiRect::bottom(px(16)),
                        ..default()
                    },
                ),
                label("Username"),
                field(Field::User),
                label("Password"),
                field(Field::Password),
                (
                    Node {
                        flex_direction: FlexDirection::Row,
                        margin: UiRect::vertical(px(6)),
                        ..default()
                    },
                    children![
                        button(Submit::LogIn, "Log in"),
                        button(Submit::Register, "Register")
                    ],
                ),
                (
                    MessageText,
                    Text::new(""),
                    TextFont::default().with_font_size(16.0),
                    TextColor(Color::srgb(1.0, 0.75, 0.45)),
                    Node {
                        margin: UiRect::top(px(10)),
                        ..default()
                    },
                ),
                label("Tab: next field   Enter: log in"),
            ],
        )],
    ));
}

fn start(screen: &mut Screen, what: Submit) {
    let credentials = Credentials {
        username: screen.form.user.clone(),
        password: screen.form.password.clone(),
        friend: None,
    };
    let client = screen.client.clone();
    screen.task = Some(IoTaskPool::get().spawn(async move {
        match what {
            Submit::LogIn => client.log_in(&credentials),
            Submit::Register => client.register(&credentials),
        }
    }));
}

fn type_keys(mut keys: MessageReader<KeyboardInput>, mut screen: ResMut<Screen>) {
    for k in keys.read() {
        if k.state != ButtonState::Pressed {
            continue;
        }
        if let Some(what) = screen.form.key(&k.logical_key, k.text.as_deref()) {
            start(&mut screen, what);
        }
    }
}

fn clicks(
    buttons: Query<(&Interaction, &LoginButton), Changed<Interaction>>,
    boxes: Query<(&Interaction, &FieldBox), Changed<Interaction>>,
    mut screen: ResMut<Screen>,
) {
    for (interaction, b) in &buttons {
        if *interaction == Interaction::Pressed
            && let Some(what) = screen.form.submit(b.0)
        {
            start(&mut screen, what);
        }
    }
    for (interaction, f) in &boxes {
        if *interaction == Interaction::Pressed && !screen.form.busy {
            screen.form.focus = f.0;
        }
    }
}

fn finish(
    mut commands: Commands,
    mut screen: ResMut<Screen>,
    root: Query<Entity, With<LoginRoot>>,
    mut dials: MessageWriter<Redial>,
    mut server: ResMut<ServerAddress>,
) {
    let Some(result) = crate::process::take_if_finished(&mut screen.task) else {
        return;
    };
    screen.form.busy = false;
    let dialled = result.and_then(|grant| {
        let (at, token) = screen.client.take_grant(&grant, screen.asked)?;
        info!(
            "logged in at {} as {} (player {}); joining {at}",
            screen.client.host(),
            grant.username,
            grant.player_id
        );
        Ok((at, token))
    });
    match dialled {
        Ok((at, token)) => {
            server.0 = at;
            dials.write(Redial {
                server: at,
                token: Box::new(token),
            });
            screen.form.password.clear();
            for e in &root {
                commands.entity(e).despawn();
            }
        }
        Err(e) => screen.form.message = e.to_string(),
    }
}

/// The texts the form fills: the two fields and the message line.
type ScreenTexts = Or<(With<FieldText>, With<MessageText>)>;

fn show(
    screen: Res<Screen>,
    mut texts: Query<(&mut Text, Option<&FieldText>), ScreenTexts>,
    mut boxes: Query<(&FieldBox, &mut BorderColor)>,
) {
    if !screen.is_changed() {
        return;
    }
    for (mut text, field) in &mut texts {
        let want = match field {
            Some(f) => screen.form.shown(f.0),
            None => screen.form.message.clone(),
        };
        if text.0 != want {
            text.0 = want;
        }
    }
    for (b, mut border) in &mut boxes {
        *border = BorderColor::all(if b.0 == screen.form.focus {
            FOCUSED
        } else {
            UNFOCUSED
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(form: &mut LoginForm, text: &str) {
        for c in text.chars() {
            let s = c.to_string();
            form.key(&Key::Character(s.as_str().into()), Some(&s));
        }
    }

    #[test]
    fn typing_tab_backspace_and_enter() {
        let mut form = LoginForm::default();
        assert_eq!(form.key(&Key::Enter, None), None);
        assert_eq!(form.message, "type your username");
        typed(&mut form, "Annx");
        form.key(&Key::Backspace, None);
        form.key(&Key::Tab, None);
        typed(&mut form, "sea shells");
        assert_eq!(
            (form.user.as_str(), form.password.as_str()),
            ("Ann", "sea shells")
        );
        assert_eq!(form.shown(Field::Password), "*".repeat(10) + "|");
        assert_eq!(form.shown(Field::User), "Ann");
        // Control characters never reach a field; the limits hold.
        form.key(&Key::Character("\u{7}".into()), Some("\u{7}"));
        form.focus = Field::User;
        typed(&mut form, &"n".repeat(40));
        assert_eq!(form.user.chars().count(), *USERNAME_LEN.end());
        assert_eq!(form.key(&Key::Enter, None), Some(Submit::LogIn));
        assert!(form.busy);
        // Nothing is typed or submitted while a request is in flight.
        typed(&mut form, "x");
        assert_eq!(form.submit(Submit::Register), None);
        assert_eq!(form.user.chars().count(), *USERNAME_LEN.end());
    }
}
