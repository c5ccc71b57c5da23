//! `tool_safety:`: pinned tool definitions (rug pulls), tools that imitate another backend's
//! (shadowing), and descriptions that carry instructions (injection).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{err, ConfigError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSafetyFile {
    /// Pin every tool's definition (name, title, description, input and output schemas,
    /// annotations) per backend; a definition that changes is quarantined until approved.
    #[serde(default)]
    pub pins: Option<PinsFile>,
    /// Flag (or hide) a tool whose name imitates another backend's tool.
    #[serde(default)]
    pub shadowing: Option<ShadowingFile>,
    /// Flag (or hide) a tool whose description carries instructions to the model.
    #[serde(default)]
    pub injection: Option<InjectionFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinsFile {
    /// The pin file (JSON; created in `first_sight` mode). Editing it approves: put the new
    /// `sha256` (from the quarantine's log line or audit record) or delete the entry.
    pub file: PathBuf,
    /// `first_sight` (default): a tool never seen is pinned as it is first listed. `file`: only
    /// the tools the file pins are shown (a new tool waits for approval too).
    #[serde(default)]
    pub mode: PinMode,
    /// How often the file is looked at for approvals.
    #[serde(default = "default_reload_ms")]
    pub reload_ms: u64,
}

fn default_reload_ms() -> u64 {
    2_000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinMode {
    #[default]
    FirstSight,
    File,
}

/// What a flag does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SafetyAction {
    /// Logged, counted and audited; the tool stays.
    #[default]
    Flag,
    /// The same, and the tool is hidden from every client.
    Hide,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowingFile {
    /// Jaro-Winkler similarity (0 to 1) of two tools' names, compared without their backend
    /// prefix, case and separators, at or above which the later backend's tool (config order)
    /// imitates the earlier one's.
    #[serde(default = "default_similarity")]
    pub similarity: f64,
    #[serde(default)]
    pub action: SafetyAction,
}

fn default_similarity() -> f64 {
    0.92
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectionFile {
    /// Regular expressions (case-insensitive) that mark instructions in a tool's title or
    /// description. Absent: ringmux's list ([`DEFAULT_INJECTION_PATTERNS`]).
    #[serde(default)]
    pub patterns: Option<Vec<String>>,
    #[serde(default = "hide")]
    pub action: SafetyAction,
}

fn hide() -> SafetyAction {
    SafetyAction::Hide
}

/// Phrases of instructions aimed at the model rather than descriptions of a tool.
pub const DEFAULT_INJECTION_PATTERNS: &[&str] = &[
    r"ignore (all |any )?(the )?(previous|prior|above) (instructions|prompts?)",
    r"<\s*(important|system|instructions?)\s*>",
    r"do not (tell|inform|mention (this )?to) the user",
    r"before (using|calling) (this|any) tool,? (you must )?(first )?read",
    r"(~/\.ssh|id_rsa|\.aws/credentials|\.env\b)",
    r"(send|pass|include) (the |all )?(conversation|chat history|api[ _-]?keys?|secrets?|credentials)",
];

/// Checked `tool_safety:`.
#[derive(Debug, Clone)]
pub struct ToolSafety {
    pub pins: Option<Pins>,
    pub shadowing: Option<Shadowing>,
    pub injection: Option<Injection>,
}

#[derive(Debug, Clone)]
pub struct Pins {
    pub file: PathBuf,
    pub mode: PinMode,
    pub reload: Duration,
}

#[derive(Debug, Clone)]
pub struct Shadowing {
    pub similarity: f64,
    pub action: SafetyAction,
}

#[derive(Debug, Clone)]
pub struct Injection {
    pub patterns: Vec<String>,
    pub action: SafetyAction,
}

impl ToolSafetyFile {
    pub fn check(self) -> Result<ToolSafety, ConfigError> {
        let pins = match self.pins {
            None => None,
            Some(p) => {
                if p.reload_ms == 0 {
                    return Err(err("tool_safety.pins.reload_ms", "must be greater than 0"));
                }
                if p.file.as_os_str().is_empty() {
                    return Err(err("tool_safety.pins.file", "a path is needed"));
                }
                Some(Pins {
                    file: p.file,
                    mode: p.mode,
                    reload: Duration::from_millis(p.reload_ms),
                })
            }
        };
        let shadowing = match self.shadowing {
            None => None,
            Some(s) => {
                if !(0.5..=1.0).contains(&s.similarity) {
                    return Err(err("tool_safety.shadowing.similarity", "from 0.5 to 1"));
                }
                Some(Shadowing {
                    similarity: s.similarity,
                    action: s.action,
                })
            }
        };
        let injection = match self.injection {
            None => None,
            Some(i) => {
                let patterns = i.patterns.unwrap_or_else(|| {
                    DEFAULT_INJECTION_PATTERNS
                        .iter()
                        .map(|p| p.to_string())
                        .collect()
                });
                for (n, p) in patterns.iter().enumerate() {
                    if let Err(e) = regex::RegexBuilder::new(p).case_insensitive(true).build() {
                        return Err(err(
                            format!("tool_safety.injection.patterns[{n}]"),
                            format!("not a regular expression: {e}"),
                        ));
                    }
                }
                if let Err(e) = regex::RegexSetBuilder::new(&patterns)
                    .case_insensitive(true)
                    .build()
                {
                    return Err(err(
                        "tool_safety.injection.patterns",
                        format!("together too large or invalid: {e}"),
                    ));
                }
                Some(Injection {
                    patterns,
                    action: i.action,
                })
            }
        };
        Ok(ToolSafety {
            pins,
            shadowing,
            injection,
        })
    }
}

/// `masking:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingFile {
    /// Patterns masked (`name` names it in the replacement, `[masked:<name>]`). Absent:
    /// ringmux's list ([`crate::mask::DEFAULT_PATTERNS`]).
    #[serde(default)]
    pub patterns: Option<Vec<PatternFile>>,
    /// With `patterns`: ringmux's list as well.
    #[serde(default)]
    pub defaults: bool,
    /// A call whose arguments match: `mask` (default: the backend sees them masked), `refuse`
    /// (-32602, the call does not reach the backend) or `off` (not checked).
    #[serde(default)]
    pub arguments: ArgumentsAction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternFile {
    pub name: String,
    pub regex: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgumentsAction {
    #[default]
    Mask,
    Refuse,
    Off,
}

/// Checked `masking:`.
#[derive(Debug, Clone)]
pub struct Masking {
    /// (name, regular expression).
    pub patterns: Vec<(String, String)>,
    pub arguments: ArgumentsAction,
}

impl MaskingFile {
    pub fn check(self) -> Result<Masking, ConfigError> {
        let defaults = || {
            crate::mask::DEFAULT_PATTERNS
                .iter()
                .map(|(n, r)| (n.to_string(), r.to_string()))
        };
        let mut patterns: Vec<(String, String)> = match self.patterns {
            None => defaults().collect(),
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for (i, p) in list.into_iter().enumerate() {
                    let ok_name = !p.name.is_empty()
                        && p.name.len() <= 64
                        && p.name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if !ok_name {
                        return Err(err(
                            format!("masking.patterns[{i}].name"),
                            "1 to 64 of A-Z a-z 0-9 _ -",
                        ));
                    }
                    if let Err(e) = regex::Regex::new(&p.regex) {
                        return Err(err(
                            format!("masking.patterns[{i}].regex"),
                            format!("not a regular expression: {e}"),
                        ));
                    }
                    out.push((p.name, p.regex));
                }
                out
            }
        };
        if self.defaults {
            patterns.extend(defaults());
        }
        if patterns.is_empty() {
            return Err(err("masking.patterns", "at least one pattern"));
        }
        // All of them in one set must fit the regex engine's size limit too.
        if let Err(e) = crate::mask::Masker::new(&patterns) {
            return Err(err(
                "masking.patterns",
                format!("together too large or invalid: {e}"),
            ));
        }
        Ok(Masking {
            patterns,
            arguments: self.arguments,
        })
    }
}
