//! Tool safety (`tool_safety:`): pinned definitions, shadowing and injection checks.
//!
//! Each shard decides, when it builds a merged tools list, which tools to leave out: a tool
//! whose definition's SHA-256 is not the pinned one (a rug pull: quarantined), one not pinned
//! at all in `file` mode, and with `action: hide` one that imitates an earlier backend's tool
//! or whose description carries instructions. A tool left out is absent from every list and
//! answered as unknown. What a shard sees goes to the `ringmux-safety` thread, which owns the
//! pin file: it pins a tool at first sight, reports each quarantine or flag once for the whole
//! gateway (log, metric, audit record with the old and new definitions), and hands the shards
//! the pins again whenever the file changes (an operator approving a definition).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};

use ringmux_core::catalog::Catalog;
use ringmux_core::config::{PinMode, SafetyAction, ToolSafety};
use ringmux_core::safety::{canonical_of, normalized_name, prose, Pin, PinFile};

use crate::metrics::ShardMetrics;

/// (backend, tool as the backend names it) → SHA-256 in hex.
pub type PinTable = HashMap<(String, String), String>;

/// What a shard tells the safety thread.
pub enum Event {
    /// A tool whose definition is not the pinned one, or that is not pinned.
    Seen {
        backend: Box<str>,
        tool: Box<str>,
        sha256: String,
        definition: String,
    },
    /// A tool flagged by a check (`shadowing`, `injection`).
    Flagged {
        backend: Box<str>,
        tool: Box<str>,
        check: &'static str,
        detail: String,
        hidden: bool,
    },
    /// The admin API approves a quarantined definition (by the hash the operator saw).
    Approve {
        backend: String,
        tool: String,
        sha256: String,
        reply: mpsc::Sender<Result<(), (u16, String)>>,
    },
}

/// Most quarantined tools the admin API lists (each holds its definition); past it, more are
/// logged and audited but not listed.
const MAX_HELD: usize = 10_000;

/// A quarantined tool, as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Held {
    pub backend: String,
    pub tool: String,
    /// The definition's hash now (what approving pins).
    pub sha256: String,
    /// The pinned hash, if it had one.
    pub pinned_sha256: Option<String>,
    pub reason: &'static str,
    pub definition: Option<serde_json::Value>,
}

/// The admin API's end of the safety thread: what is quarantined now, and a way to approve.
/// (A lock and a channel off the request path: the safety thread and admin threads only.)
#[derive(Clone)]
pub struct Control {
    held: Arc<std::sync::Mutex<std::collections::BTreeMap<(String, String), Held>>>,
    events: mpsc::SyncSender<Event>,
}

impl Control {
    /// The tools quarantined now.
    pub fn quarantined(&self) -> Vec<Held> {
        self.held
            .lock()
            .map(|h| h.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Approves `backend`'s `tool` at definition `sha256` (the one listed as quarantined):
    /// it is pinned, the file written, and every shard shows the tool again. `Err` (an HTTP
    /// status and why): nothing quarantined has that hash (409), the pin file could not be
    /// written (500), or the safety thread is busy or gone (503).
    pub fn approve(&self, backend: &str, tool: &str, sha256: &str) -> Result<(), (u16, String)> {
        let (reply, answer) = mpsc::channel();
        self.events
            .try_send(Event::Approve {
                backend: backend.into(),
                tool: tool.into(),
                sha256: sha256.to_ascii_lowercase(),
                reply,
            })
            .map_err(|_| (503, "the tool safety thread is busy; try again".to_string()))?;
        answer
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| (503, "the tool safety thread did not answer".to_string()))?
    }
}

/// A shard's end of the safety thread.
pub struct Feed {
    updates: mpsc::Receiver<Arc<PinTable>>,
    events: mpsc::SyncSender<Event>,
    initial: Arc<PinTable>,
}

/// Events a shard may have in flight to the thread (the queue holds this many per shard); a
/// shard whose event does not fit tries again at its next build.
const EVENT_QUEUE: usize = 4096;

/// Most tools pinned per backend: a backend that keeps inventing tools does not grow the pin
/// file without end (past it, new tools are reported and not pinned: in `first_sight` mode
/// they are shown unpinned, as before first sight).
const MAX_PINS_PER_BACKEND: usize = 10_000;

/// Most reports remembered (so each is made once); past it the memory starts over.
const MAX_REPORTED: usize = 100_000;

/// The facts of one tool of a catalog, computed once per fetched catalog.
struct Facts {
    name: String,
    /// `None`: the item does not parse as a JSON object (the tool is hidden: fail closed).
    readable: bool,
    sha256: String,
    definition: String,
    normalized: String,
    /// The index of the injection pattern its title or description matches.
    injected: Option<usize>,
}

/// The facts of a catalog's tools (held weakly: they go with the catalog).
type CatalogFacts = (Weak<Catalog>, Rc<[Facts]>);

/// A shard's tool safety.
pub struct Safety {
    cfg: ToolSafety,
    feed: Feed,
    pins: RefCell<Arc<PinTable>>,
    generation: Cell<u64>,
    facts: RefCell<Vec<CatalogFacts>>,
    /// Events sent already (backend, tool, what): each once per shard.
    sent: RefCell<HashSet<(u16, String, String)>>,
    injection: Option<regex::RegexSet>,
}

impl Safety {
    pub fn new(cfg: &ToolSafety, feed: Feed) -> Safety {
        let injection = cfg.injection.as_ref().map(|i| {
            regex::RegexSetBuilder::new(&i.patterns)
                .case_insensitive(true)
                .build()
                .expect("patterns were compiled when the config was checked")
        });
        Safety {
            cfg: cfg.clone(),
            pins: RefCell::new(feed.initial.clone()),
            feed,
            generation: Cell::new(0),
            facts: RefCell::new(Vec::new()),
            sent: RefCell::new(HashSet::new()),
            injection,
        }
    }

    /// Takes the pins the thread sent since; returns the generation (it changes with them, and
    /// merged tool lists are rebuilt when it does).
    pub fn refresh(&self) -> u64 {
        while let Ok(table) = self.feed.updates.try_recv() {
            *self.pins.borrow_mut() = table;
            self.generation.set(self.generation.get() + 1);
            // New pins (an approval, an entry deleted): what was told the thread may need
            // telling again (a deleted entry is pinned anew only if the thread hears of it).
            self.sent.borrow_mut().clear();
        }
        self.generation.get()
    }

    fn facts_of(&self, catalog: &Rc<Catalog>) -> Rc<[Facts]> {
        let this = Rc::as_ptr(catalog);
        if let Some((_, f)) = self
            .facts
            .borrow()
            .iter()
            .find(|(c, _)| std::ptr::eq(c.as_ptr(), this))
        {
            return f.clone();
        }
        let facts: Rc<[Facts]> = (0..catalog.len())
            .map(|i| {
                let parsed: Option<serde_json::Value> =
                    serde_json::from_slice(catalog.item(i)).ok();
                let definition = parsed.as_ref().and_then(canonical_of);
                let readable = definition.is_some();
                let definition = definition.unwrap_or_default();
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, definition.as_bytes());
                let name = catalog.key(i).into_owned();
                let text = parsed.as_ref().map(prose).unwrap_or_default();
                Facts {
                    readable,
                    sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
                    definition,
                    normalized: normalized_name(&name),
                    injected: self
                        .injection
                        .as_ref()
                        .and_then(|set| set.matches(&text).iter().next()),
                    name,
                }
            })
            .collect();
        let mut cache = self.facts.borrow_mut();
        cache.retain(|(c, _)| c.strong_count() > 0);
        cache.push((Rc::downgrade(catalog), facts.clone()));
        facts
    }

    fn send(&self, b: u16, tool: &str, what: String, event: impl FnOnce() -> Event) {
        let mut sent = self.sent.borrow_mut();
        if sent.len() >= 65_536 {
            sent.clear();
        }
        let key = (b, tool.to_owned(), what);
        // Marked as told only once the thread has it: a full queue is tried again next time.
        if !sent.contains(&key) && self.feed.events.try_send(event()).is_ok() {
            sent.insert(key);
        }
    }

    /// Which tools of these sources (backend index, backend name, catalog; config order) to
    /// leave out, per source and item.
    pub fn hidden(&self, sources: &[(u16, &str, &Rc<Catalog>)]) -> Vec<Vec<bool>> {
        let pins = self.pins.borrow().clone();
        let all: Vec<Rc<[Facts]>> = sources.iter().map(|(_, _, c)| self.facts_of(c)).collect();
        let mut out: Vec<Vec<bool>> = Vec::with_capacity(sources.len());
        // Names seen so far (normalized), by first character, with their backend and tool.
        let mut seen: HashMap<char, Vec<(usize, usize)>> = HashMap::new();
        for (si, (b, backend, _)) in sources.iter().enumerate() {
            let mut hide = vec![false; all[si].len()];
            for (i, f) in all[si].iter().enumerate() {
                if !f.readable {
                    // Not JSON this gateway can read (a lone surrogate, say): what a client
                    // would show cannot be checked, so it is not shown.
                    self.send(*b, &f.name, "unreadable".into(), || Event::Flagged {
                        backend: (*backend).into(),
                        tool: f.name.clone().into(),
                        check: "unreadable",
                        detail: "its definition is not JSON ringmux can read".into(),
                        hidden: true,
                    });
                    hide[i] = true;
                    continue;
                }
                if let Some(p) = &self.cfg.pins {
                    let pinned = pins.get(&(backend.to_string(), f.name.clone()));
                    let ok = match pinned {
                        Some(sha) => *sha == f.sha256,
                        None => p.mode == PinMode::FirstSight,
                    };
                    if pinned != Some(&f.sha256) {
                        self.send(*b, &f.name, f.sha256.clone(), || Event::Seen {
                            backend: (*backend).into(),
                            tool: f.name.clone().into(),
                            sha256: f.sha256.clone(),
                            definition: f.definition.clone(),
                        });
                    }
                    if !ok {
                        hide[i] = true;
                        continue;
                    }
                }
                if let (Some(inj), Some(pattern)) = (&self.cfg.injection, f.injected) {
                    let hidden = inj.action == SafetyAction::Hide;
                    self.send(*b, &f.name, "injection".into(), || Event::Flagged {
                        backend: (*backend).into(),
                        tool: f.name.clone().into(),
                        check: "injection",
                        detail: format!(
                            "its description matches pattern {pattern}: {:?}",
                            inj.patterns[pattern]
                        ),
                        hidden,
                    });
                    if hidden {
                        hide[i] = true;
                        continue;
                    }
                }
                if let Some(sh) = &self.cfg.shadowing {
                    let first = f.normalized.chars().next().unwrap_or(' ');
                    let imitated = seen.get(&first).and_then(|list| {
                        list.iter().copied().find(|&(sj, j)| {
                            sources[sj].0 != *b
                                && strsim::jaro_winkler(&all[sj][j].normalized, &f.normalized)
                                    >= sh.similarity
                        })
                    });
                    if let Some((sj, j)) = imitated {
                        let hidden = sh.action == SafetyAction::Hide;
                        let other = format!("{}'s {}", sources[sj].1, all[sj][j].name);
                        self.send(*b, &f.name, format!("shadowing {other}"), || {
                            Event::Flagged {
                                backend: (*backend).into(),
                                tool: f.name.clone().into(),
                                check: "shadowing",
                                detail: format!("its name imitates {other}"),
                                hidden,
                            }
                        });
                        if hidden {
                            hide[i] = true;
                            continue;
                        }
                    }
                    seen.entry(first).or_default().push((si, i));
                }
            }
            out.push(hide);
        }
        out
    }
}

/// Starts the `ringmux-safety` thread; returns each shard's end. The pin file is read now: a
/// file that does not parse stops the start (a missing one is an empty set in `first_sight`
/// mode, and an error in `file` mode).
pub fn start(
    cfg: &ToolSafety,
    shards: usize,
    metrics: Arc<ShardMetrics>,
    audit: Option<crate::audit::Audit>,
) -> Result<(Vec<Feed>, Control), String> {
    let mut file = match &cfg.pins {
        Some(p) => match std::fs::read_to_string(&p.file) {
            Ok(text) => PinFile::parse(&text)
                .map_err(|e| format!("tool_safety.pins.file {}: {e}", p.file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && p.mode == PinMode::FirstSight => {
                PinFile {
                    version: PinFile::VERSION,
                    ..Default::default()
                }
            }
            Err(e) => return Err(format!("tool_safety.pins.file {}: {e}", p.file.display())),
        },
        None => PinFile::default(),
    };
    let initial = Arc::new(file.table());
    let (events_tx, events) = mpsc::sync_channel(EVENT_QUEUE * shards.max(1));
    let mut senders = Vec::with_capacity(shards);
    let mut feeds = Vec::with_capacity(shards);
    for _ in 0..shards {
        let (tx, rx) = mpsc::channel();
        senders.push(tx);
        feeds.push(Feed {
            updates: rx,
            events: events_tx.clone(),
            initial: initial.clone(),
        });
    }
    let held: Arc<std::sync::Mutex<std::collections::BTreeMap<(String, String), Held>>> =
        Arc::default();
    let control = Control {
        held: held.clone(),
        events: events_tx.clone(),
    };
    drop(events_tx);
    let cfg = cfg.clone();
    std::thread::Builder::new()
        .name("ringmux-safety".into())
        .spawn(move || {
            let every = cfg.pins.as_ref().map_or(Duration::from_secs(3600), |p| p.reload);
            let mut stamp = cfg.pins.as_ref().and_then(|p| stamp_of(&p.file));
            let mut reported: HashSet<(Box<str>, Box<str>, String)> = HashSet::new();
            let broadcast = |file: &PinFile| {
                let table = Arc::new(file.table());
                for tx in &senders {
                    let _ = tx.send(table.clone());
                }
                // What the pins now allow is quarantined no more.
                if let Ok(mut h) = held.lock() {
                    h.retain(|(b, t), q| {
                        file.get(b, t).is_none_or(|p| !p.sha256.eq_ignore_ascii_case(&q.sha256))
                    });
                }
            };
            loop {
                let first = match events.recv_timeout(every) {
                    Ok(event) => Some(event),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                };
                if let Some(first) = first {
                    // The operator's edits first: a pin written now must not undo an approval
                    // made since the last look.
                    let mut reloaded = false;
                    if let Some(p) = &cfg.pins {
                        if stamp_of(&p.file) != stamp {
                            if let Ok(f) = std::fs::read_to_string(&p.file)
                                .map_err(|e| e.to_string())
                                .and_then(|t| PinFile::parse(&t))
                            {
                                reloaded = f != file;
                                file = f;
                                reported.clear();
                            }
                            stamp = stamp_of(&p.file);
                        }
                    }
                    if reported.len() >= MAX_REPORTED {
                        reported.clear();
                    }
                    // Everything queued now, then one write; approvals are answered once it
                    // is written.
                    let mut changed = false;
                    let mut approvals = Vec::new();
                    for event in std::iter::once(first).chain(events.try_iter()) {
                        changed |= match event {
                            Event::Approve { backend, tool, sha256, reply } => {
                                match approve(&cfg, &mut file, &held, &backend, &tool, &sha256, audit.as_ref()) {
                                    Ok(()) => {
                                        approvals.push(reply);
                                        true
                                    }
                                    Err(e) => {
                                        let _ = reply.send(Err(e));
                                        false
                                    }
                                }
                            }
                            event => handle(&cfg, &mut file, event, &mut reported, &metrics, audit.as_ref(), &held),
                        };
                    }
                    let mut written = Ok(());
                    if changed {
                        if let Some(p) = &cfg.pins {
                            if let Err(e) = write_atomically(&p.file, &file) {
                                tracing::warn!(file = %p.file.display(), "pin file write failed: {e}");
                                written = Err((500, format!("the pin file could not be written ({e}); the approval holds until a restart")));
                            }
                            stamp = stamp_of(&p.file);
                        }
                    }
                    if changed || reloaded {
                        broadcast(&file);
                    }
                    for reply in approvals {
                        let _ = reply.send(written.clone());
                    }
                }
                // Approvals: the operator edited the file.
                if let Some(p) = &cfg.pins {
                    let now = stamp_of(&p.file);
                    if now != stamp {
                        stamp = now;
                        match std::fs::read_to_string(&p.file).map_err(|e| e.to_string()).and_then(|t| PinFile::parse(&t)) {
                            Ok(f) if f != file => {
                                tracing::info!(file = %p.file.display(), "pin file changed; pins reloaded");
                                file = f;
                                // What was reported may be approved now, or change again.
                                reported.clear();
                                broadcast(&file);
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(file = %p.file.display(), "pin file not reloaded (the pins in use stay): {e}"),
                        }
                    }
                }
            }
        })
        .map_err(|e| format!("starting the tool safety thread: {e}"))?;
    Ok((feeds, control))
}

/// The admin API's approval, on the safety thread: the quarantined definition with hash
/// `sha256` is pinned (and audited). `Err` when none is held with that hash.
fn approve(
    cfg: &ToolSafety,
    file: &mut PinFile,
    held: &std::sync::Mutex<std::collections::BTreeMap<(String, String), Held>>,
    backend: &str,
    tool: &str,
    sha256: &str,
    audit: Option<&crate::audit::Audit>,
) -> Result<(), (u16, String)> {
    if cfg.pins.is_none() {
        return Err((409, "tool_safety.pins is not configured".into()));
    }
    let key = (backend.to_owned(), tool.to_owned());
    let q = held
        .lock()
        .map_err(|_| (500, "the quarantine list is unavailable".to_string()))?
        .get(&key)
        .filter(|q| q.sha256.eq_ignore_ascii_case(sha256))
        .cloned()
        .ok_or_else(|| {
            (
                409,
                format!("no quarantined definition of {backend}/{tool} has sha256 {sha256}"),
            )
        })?;
    file.pins.entry(key.0).or_default().insert(
        key.1,
        Pin {
            sha256: q.sha256.clone(),
            definition: q.definition.clone(),
        },
    );
    tracing::info!(%backend, %tool, sha256 = %q.sha256, "quarantined definition approved through the admin API");
    if let Some(a) = audit {
        a.record(&crate::audit::Record {
            name: Some(tool),
            reason: Some("approved through the admin API"),
            ..crate::audit::Record::new("approve", true, "admin", "tools/list", backend)
        });
    }
    Ok(())
}

/// Modification time and size: what tells a changed file.
fn stamp_of(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Writes the pin file whole, durably: a temporary file, synced, renamed over the old one (a
/// crash leaves the old file or the new one, never half of either).
fn write_atomically(path: &std::path::Path, file: &PinFile) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let text = serde_json::to_string_pretty(file).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// One event on the thread; returns whether the pins changed.
fn handle(
    cfg: &ToolSafety,
    file: &mut PinFile,
    event: Event,
    reported: &mut HashSet<(Box<str>, Box<str>, String)>,
    metrics: &ShardMetrics,
    audit: Option<&crate::audit::Audit>,
    held: &std::sync::Mutex<std::collections::BTreeMap<(String, String), Held>>,
) -> bool {
    let record = |event: &'static str,
                  hidden: bool,
                  backend: &str,
                  tool: &str,
                  reason: &str,
                  old: Option<&str>,
                  new: Option<&str>| {
        if let Some(a) = audit {
            let raw = |s: Option<&str>| {
                s.and_then(|s| serde_json::value::RawValue::from_string(s.to_owned()).ok())
            };
            let (old, new) = (raw(old), raw(new));
            a.record(&crate::audit::Record {
                name: Some(tool),
                reason: Some(reason),
                old: old.as_deref(),
                new: new.as_deref(),
                ..crate::audit::Record::new(event, !hidden, "ringmux", "tools/list", backend)
            });
        }
    };
    match event {
        Event::Seen {
            backend,
            tool,
            sha256,
            definition,
        } => {
            let Some(p) = &cfg.pins else { return false };
            let pinned = file.get(&backend, &tool).cloned();
            match pinned {
                None if p.mode == PinMode::FirstSight
                    && file.pins.get(&*backend).map_or(0, |t| t.len()) >= MAX_PINS_PER_BACKEND =>
                {
                    if reported.insert((backend.clone(), "*".into(), "too many".into())) {
                        tracing::warn!(%backend, max = MAX_PINS_PER_BACKEND, "backend lists more tools than may be pinned; the others stay unpinned");
                    }
                    false
                }
                None if p.mode == PinMode::FirstSight => {
                    let definition = serde_json::from_str(&definition).ok();
                    file.pins
                        .entry(backend.to_string())
                        .or_default()
                        .insert(tool.to_string(), Pin { sha256, definition });
                    tracing::info!(%backend, %tool, "tool pinned at first sight");
                    true
                }
                Some(pin) if pin.sha256.eq_ignore_ascii_case(&sha256) => {
                    // Back to its pinned definition: nothing of it is held any more.
                    if let Ok(mut h) = held.lock() {
                        h.remove(&(backend.to_string(), tool.to_string()));
                    }
                    false
                }
                pinned => {
                    let reason = if pinned.is_some() {
                        "its definition changed since it was pinned"
                    } else {
                        "it is not in the pin file"
                    };
                    // What the admin API lists is the definition held back now, reported
                    // before or not (a backend flipping between two keeps it current).
                    if let Ok(mut h) = held.lock() {
                        let key = (backend.to_string(), tool.to_string());
                        if h.len() < MAX_HELD || h.contains_key(&key) {
                            h.insert(
                                key,
                                Held {
                                    backend: backend.to_string(),
                                    tool: tool.to_string(),
                                    sha256: sha256.clone(),
                                    pinned_sha256: pinned.as_ref().map(|p| p.sha256.clone()),
                                    reason,
                                    definition: serde_json::from_str(&definition).ok(),
                                },
                            );
                        }
                    }
                    if !reported.insert((backend.clone(), tool.clone(), sha256.clone())) {
                        return false;
                    }
                    metrics.tools_quarantined.add(1);
                    tracing::warn!(%backend, %tool, new_sha256 = %sha256, old_sha256 = pinned.as_ref().map_or("", |p| p.sha256.as_str()), "tool quarantined: {reason}; hidden until its definition is approved (pin file or admin API)");
                    let old = pinned.and_then(|p| p.definition).map(|d| d.to_string());
                    let new = serde_json::json!({"sha256": sha256, "definition": serde_json::from_str::<serde_json::Value>(&definition).ok()}).to_string();
                    let old = old.map(|d| format!("{{\"definition\":{d}}}"));
                    record(
                        "quarantine",
                        true,
                        &backend,
                        &tool,
                        reason,
                        old.as_deref(),
                        Some(&new),
                    );
                    false
                }
            }
        }
        Event::Flagged {
            backend,
            tool,
            check,
            detail,
            hidden,
        } => {
            if reported.insert((backend.clone(), tool.clone(), format!("{check} {detail}"))) {
                metrics.tools_flagged.add(1);
                tracing::warn!(%backend, %tool, check, hidden, "tool flagged: {detail}");
                record(
                    "flag",
                    hidden,
                    &backend,
                    &tool,
                    &format!("{check}: {detail}"),
                    None,
                    None,
                );
            }
            false
        }
        // The thread's loop takes approvals; one that reached here is refused, not lost.
        Event::Approve { reply, .. } => {
            let _ = reply.send(Err((500, "not handled".into())));
            false
        }
    }
}
