//! What the menu-bar icon shows, decided and drawn here in the core (so it is tested
//! without a window system); `desktop/tray.rs` only hands the pixels to the tray.
//!
//! The icon stays monochrome (a template image on macOS, tinted by the menu bar); the
//! state is a badge in its lower right corner — a dot while serving, a ring while a
//! model loads, a cross on error — and the whole icon is faint while the gateway is
//! stopped by the user.
//!
//! The menu's words are here too, in the window's two languages ([`EN`], [`JA`]): the
//! window's catalogue (ui/src/lib/i18n.ts) is TypeScript, the menu is drawn from Rust,
//! and the window tells the app which language it speaks.

use super::GatewayStatus;
use crate::error::Code;
use crate::pool::LoadedModel;

/// The tray menu's words in one language.
pub struct Words {
    pub open: &'static str,
    pub quit: &'static str,
    pub stop: &'static str,
    pub start: &'static str,
    gateway: &'static str,
    starting: &'static str,
    stopped: &'static str,
    port_in_use: &'static str,
    not_running: &'static str,
    tokens_off: &'static str,
    no_model: &'static str,
    loaded: &'static str,
    pinned: &'static str,
}

pub static EN: Words = Words {
    open: "Open Switchyard",
    quit: "Quit Switchyard",
    stop: "Stop Gateway",
    start: "Start Gateway",
    gateway: "Gateway: ",
    starting: "starting on port {port}…",
    stopped: "stopped",
    port_in_use: "port {port} in use",
    not_running: "not running ({code})",
    tokens_off: " — client tokens off",
    no_model: "No model loaded",
    loaded: "Loaded: ",
    pinned: " [pinned]",
};

pub static JA: Words = Words {
    open: "Switchyard を開く",
    quit: "Switchyard を終了",
    stop: "ゲートウェイを停止",
    start: "ゲートウェイを起動",
    gateway: "ゲートウェイ: ",
    starting: "ポート {port} で起動中…",
    stopped: "停止",
    port_in_use: "ポート {port} は使用中",
    not_running: "動作していません（{code}）",
    tokens_off: " — クライアントトークン無効",
    no_model: "モデルは読み込まれていません",
    loaded: "読み込み済み: ",
    pinned: " [固定]",
};

impl Words {
    /// The words for a window language (`en`, `ja`); English for any other.
    pub fn for_locale(locale: &str) -> &'static Words {
        match locale {
            "ja" => &JA,
            _ => &EN,
        }
    }

    /// The status line: where the gateway listens or why it does not; `tokens_off`:
    /// loopback clients need no client token (said on the line, as everywhere that
    /// setting shows).
    pub fn status_line(&self, s: &GatewayStatus, tokens_off: bool) -> String {
        let what = match s {
            GatewayStatus::Starting { port, .. } => {
                self.starting.replace("{port}", &port.to_string())
            }
            GatewayStatus::Running { url, .. } if tokens_off => format!("{url}{}", self.tokens_off),
            GatewayStatus::Running { url, .. } => url.clone(),
            GatewayStatus::Failed { port, error, .. } if error.code == Code::PortInUse => {
                self.port_in_use.replace("{port}", &port.to_string())
            }
            GatewayStatus::Failed { error, .. } => {
                self.not_running.replace("{code}", error.code.as_str())
            }
            GatewayStatus::Stopped { .. } => self.stopped.into(),
        };
        format!("{}{what}", self.gateway)
    }

    /// The loaded-models line: `No model loaded`, or `Loaded: a (94 MB), b (1.2 GB)`.
    pub fn models_line(&self, loaded: &[LoadedModel]) -> String {
        if loaded.is_empty() {
            return self.no_model.into();
        }
        let size = |b: u64| {
            if b >= 1 << 30 {
                format!("{:.1} GB", b as f64 / (1u64 << 30) as f64)
            } else {
                format!("{} MB", b >> 20)
            }
        };
        let names: Vec<String> = loaded
            .iter()
            .map(|m| {
                format!(
                    "{}{} ({})",
                    m.name,
                    if m.pinned { self.pinned } else { "" },
                    size(m.bytes_estimated.max(m.bytes_measured))
                )
            })
            .collect();
        format!("{}{}", self.loaded, names.join(", "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayState {
    Error,
    Loading,
    Serving,
    Idle,
    Stopped,
}

impl TrayState {
    /// Words for the tooltip.
    pub fn label(self) -> &'static str {
        match self {
            TrayState::Error => "error",
            TrayState::Loading => "loading a model",
            TrayState::Serving => "serving",
            TrayState::Idle => "idle",
            TrayState::Stopped => "stopped",
        }
    }
}

/// The state from the gateway's status, whether the pool is loading a model, and
/// whether requests are in flight (or finished a moment ago). The most urgent wins:
/// an error, then a load, then requests.
pub fn tray_state(s: &GatewayStatus, loading: bool, busy: bool) -> TrayState {
    match s {
        GatewayStatus::Failed { .. } => TrayState::Error,
        GatewayStatus::Stopped { .. } => TrayState::Stopped,
        _ if loading => TrayState::Loading,
        GatewayStatus::Running { .. } if busy => TrayState::Serving,
        _ => TrayState::Idle,
    }
}

/// Opacity of the whole icon while the gateway is stopped.
const STOPPED_ALPHA: f32 = 0.35;

/// The icon for `state`: `base` is the idle icon, `size`×`size` RGBA pixels.
pub fn tray_icon(base: &[u8], size: u32, state: TrayState) -> Vec<u8> {
    let mut px = base.to_vec();
    let n = size as f32;
    // The badge: a circle in the lower right corner, with a clear margin around it so
    // it reads apart from the glyph.
    let (c, r, margin, stroke) = (n * 0.80, n * 0.17, n * 0.06, n * 0.065);
    let badge = |x: f32, y: f32| -> Option<f32> {
        let (dx, dy) = (x - c, y - c);
        let d = (dx * dx + dy * dy).sqrt();
        // Coverage of the pixel by each shape, antialiased over one pixel.
        let cover = |inside: f32| (inside + 0.5).clamp(0.0, 1.0);
        match state {
            TrayState::Serving => Some(cover(r - d)),
            TrayState::Loading => Some(cover(r - d).min(cover(d - (r - stroke)))),
            TrayState::Error => {
                let arm = (dx - dy).abs().min((dx + dy).abs()) / std::f32::consts::SQRT_2;
                Some(cover(stroke / 2.0 + 0.5 - arm).min(cover(r - d)))
            }
            TrayState::Idle | TrayState::Stopped => None,
        }
    };
    for y in 0..size {
        for x in 0..size {
            let i = ((y * size + x) * 4) as usize;
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            if state == TrayState::Stopped {
                px[i + 3] = (px[i + 3] as f32 * STOPPED_ALPHA).round() as u8;
                continue;
            }
            let Some(cover) = badge(fx, fy) else { continue };
            let d = ((fx - c).powi(2) + (fy - c).powi(2)).sqrt();
            // Clear the glyph around the badge, then draw the badge in the glyph's ink.
            let clear = ((r + margin) - d + 0.5).clamp(0.0, 1.0);
            let keep = px[i + 3] as f32 * (1.0 - clear);
            px[i..i + 3].copy_from_slice(&INK);
            px[i + 3] = (keep.max(cover * 255.0)).round() as u8;
        }
    }
    px
}

/// The glyph's colour (black: macOS tints template images; elsewhere it is the icon).
const INK: [u8; 3] = [0, 0, 0];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Code, Error};

    #[test]
    fn the_most_urgent_state_wins() {
        let host = || "127.0.0.1".to_string();
        let running = GatewayStatus::Running {
            url: "http://127.0.0.1:8399".into(),
            host: host(),
            port: 8399,
        };
        let failed = GatewayStatus::Failed {
            host: host(),
            port: 8399,
            error: Error::new(Code::PortInUse, "in use"),
        };
        let stopped = GatewayStatus::Stopped {
            host: host(),
            port: 8399,
        };
        let starting = GatewayStatus::Starting {
            host: host(),
            port: 8399,
        };
        use TrayState as S;
        for (status, loading, busy, want) in [
            (&running, false, false, S::Idle),
            (&running, false, true, S::Serving),
            (&running, true, true, S::Loading),
            (&failed, true, true, S::Error),
            (&stopped, true, false, S::Stopped),
            (&starting, false, true, S::Idle),
        ] {
            assert_eq!(
                tray_state(status, loading, busy),
                want,
                "{status:?} {loading} {busy}"
            );
        }
    }

    #[test]
    fn the_menu_speaks_the_windows_language() {
        let busy = GatewayStatus::Failed {
            host: "127.0.0.1".into(),
            port: 8399,
            error: Error::new(Code::PortInUse, "in use"),
        };
        assert_eq!(
            Words::for_locale("ja").status_line(&busy, false),
            "ゲートウェイ: ポート 8399 は使用中"
        );
        assert_eq!(
            Words::for_locale("fr").status_line(&busy, false),
            "Gateway: port 8399 in use"
        );
        let model = |name: &str, mb: u64, pinned| LoadedModel {
            id: 1,
            name: name.into(),
            bytes_estimated: mb << 20,
            bytes_measured: 0,
            pinned,
            busy: false,
            in_flight: 0,
            uses: 0,
            last_used_ms: 0,
            loaded_ms: 0,
            context: 2048,
        };
        assert_eq!(EN.models_line(&[]), "No model loaded");
        assert_eq!(
            EN.models_line(&[model("a", 94, false), model("b", 1229, true)]),
            "Loaded: a (94 MB), b [pinned] (1.2 GB)"
        );
        assert_eq!(
            JA.models_line(&[model("a", 94, true)]),
            "読み込み済み: a [固定] (94 MB)"
        );
    }

    /// A 64×64 icon: a solid block of ink over the whole badge corner.
    fn base() -> Vec<u8> {
        let mut px = vec![0u8; 64 * 64 * 4];
        for y in 36..64 {
            for x in 36..64 {
                px[(y * 64 + x) * 4 + 3] = 255;
            }
        }
        px
    }

    fn alpha(px: &[u8], x: usize, y: usize) -> u8 {
        px[(y * 64 + x) * 4 + 3]
    }

    #[test]
    fn each_state_draws_its_own_badge() {
        let b = base();
        let (c, edge_gap) = (51, 51 + 12); // badge centre; inside the clear margin
        let idle = tray_icon(&b, 64, TrayState::Idle);
        assert_eq!(idle, b, "idle is the icon itself");
        let serving = tray_icon(&b, 64, TrayState::Serving);
        assert_eq!(alpha(&serving, c, c), 255, "a dot: its centre is ink");
        assert_eq!(
            alpha(&serving, edge_gap, c),
            0,
            "a margin is cleared around it"
        );
        assert_eq!(alpha(&serving, 37, 37), 255, "the glyph away from it stays");
        let loading = tray_icon(&b, 64, TrayState::Loading);
        assert_eq!(alpha(&loading, c, c), 0, "a ring: its centre is empty");
        assert_eq!(alpha(&loading, c + 9, c), 255, "…and its rim is ink");
        let error = tray_icon(&b, 64, TrayState::Error);
        assert_eq!(alpha(&error, c, c), 255, "a cross: its centre is ink");
        assert_eq!(alpha(&error, c + 6, c), 0, "…but not beside the centre");
        assert_eq!(alpha(&error, c + 5, c + 5), 255, "…along its arms");
        let stopped = tray_icon(&b, 64, TrayState::Stopped);
        assert_eq!(alpha(&stopped, 37, 37), 89, "stopped: the icon is faint");
        let all = [&idle, &serving, &loading, &error, &stopped];
        for (i, a) in all.iter().enumerate() {
            for bb in &all[i + 1..] {
                assert_ne!(a, bb, "two states look alike");
            }
        }
    }
}
